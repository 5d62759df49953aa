"""HTTP API of intake (mounted under /api/v1/ops): the internal API, the 12345 hotline, grid inspectors'
reports with a photo, and the photos. Open311 has its own router (``intake.open311``), mounted at /open311/v2."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Header, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy.orm import Session

from citybase.core.errors import InvalidInput
from citybase.core.i18n import Msg
from citybase.kernel import idempotency
from citybase.ops.http import _audit_contact, _classifier, _done, _names, _sees_contact, actor_of
from citybase.ops.intake import service
from citybase.ops.intake.schemas import HotlineCall, IncidentCreate, IntakeRead
from citybase.ops.workflow.schemas import IncidentRead
from citybase.ops.workflow.states import DISPATCH
from citybase.security.deps import allow, get_session
from citybase.security.roles import STAFF
from citybase.security.service import Principal

router = APIRouter(prefix="/ops", tags=["一网统管 incident loop"])
MAX_PHOTO = 5 * 1024 * 1024


def _intake_read(p: Principal, r: service.IntakeResult, session: Session) -> tuple[IntakeRead, bool]:
    """The answer to an intake, and whether it shows the reporter's contact (then audit it after the commit)."""
    masked = not _sees_contact(p, r.incident)
    read = IntakeRead(incident=IncidentRead.of(r.incident, masked=masked, names=_names(session)),
                      merged_into=r.merged_into.code if r.merged_into else None,
                      possible_duplicates=[{"incident_id": i, "similarity": s, "metres": m}
                                           for i, s, m in r.possible_duplicates])
    return read, not masked


IDEMPOTENCY_KEY = Header(None, alias=idempotency.HEADER, max_length=300, description=(
    "A key of your choice, new for each report (a UUID): a retry with the same key and body gets the first "
    "answer and never files the report twice; the same key with another body is refused (422). Kept 24 h."))


def _replay(answer: idempotency.Answer) -> Response:
    return Response(answer.body, status_code=answer.status_code, media_type=answer.media_type,
                    headers={"Idempotent-Replayed": "true"})


def _replay_audited(request: Request, p: Principal, answer: idempotency.Answer) -> Response:
    """The first answer again; its reporter's contact, if it shows it in full, is a read audited again."""
    try:
        incident = json.loads(answer.body).get("incident") or {}
    except ValueError:
        incident = {}
    phone = incident.get("reporter_phone")
    if incident.get("id") and phone and "*" not in phone:
        _audit_contact(request, p, [incident["id"]])
    return _replay(answer)


def _intake(request: Request, session: Session, p: Principal, key: str | None, fingerprint: Any,
            work: Any) -> Response:
    """Run one intake once per (caller, Idempotency-Key): the work, its answer stored with it, commit, publish."""
    key = idempotency.check_key(key)
    who = f"user:{p.user_id}" if p.user_id else p.actor
    fp = idempotency.fingerprint(request.method, request.url.path, fingerprint)
    if key and (first := idempotency.lookup(session=session, principal=who, key=key, fingerprint=fp)):
        return _replay_audited(request, p, first)
    read, unmasked = _intake_read(p, work(), session)
    answer = idempotency.Answer(201, "application/json", read.model_dump_json().encode("utf-8"))
    if key and (first := idempotency.record(session=session, principal=who, key=key, fingerprint=fp,
                                            answer=answer)):
        return _replay_audited(request, p, first)  # a concurrent retry was stored first: ours was rolled back
    _done(request, session, p)
    if unmasked:  # after the commit (SQLite has one writer); if it fails the client retries, and the replay audits
        _audit_contact(request, p, [read.incident.id])
    return Response(answer.body, status_code=201, media_type=answer.media_type)


@router.post("/incidents", response_model=IntakeRead, status_code=201, summary="Report an incident (internal API)")
def create_incident(body: IncidentCreate, request: Request, p: Principal = Depends(allow(*DISPATCH)),
                    session: Session = Depends(get_session, scope="function"), idempotency_key: str | None = IDEMPOTENCY_KEY) -> Any:
    return _intake(request, session, p, idempotency_key, body.model_dump(mode="json"), lambda: service.submit(
        session=session, command=service.IntakeCommand(channel="api", **body.model_dump()), actor=actor_of(p),
        classifier=_classifier(request)))


@router.post("/hotline", response_model=IntakeRead, status_code=201, summary="12345 hotline: a call taken by an operator")
def hotline(body: HotlineCall, request: Request, p: Principal = Depends(allow(*DISPATCH)),
            session: Session = Depends(get_session, scope="function"), idempotency_key: str | None = IDEMPOTENCY_KEY) -> Any:
    return _intake(request, session, p, idempotency_key, body.model_dump(mode="json"), lambda: service.submit(
        session=session, command=service.IntakeCommand(
            channel="hotline", description=body.text, address=body.address, reporter_name=body.caller_name,
            reporter_phone=body.caller_phone, priority=body.priority),
        actor=actor_of(p), classifier=_classifier(request)))


@router.post("/inspections", response_model=IntakeRead, status_code=201, summary="A grid inspector's report (网格员)")
async def inspection(request: Request, lon: float = Form(..., ge=-180, le=180), lat: float = Form(..., ge=-90, le=90),
                     category_code: str = Form(...), description: str = Form(..., min_length=1, max_length=2000),
                     priority: str | None = Form(None, pattern="^(urgent|normal|low)$"),
                     photo: UploadFile | None = File(None), p: Principal = Depends(allow("grid_inspector", "admin")),
                     session: Session = Depends(get_session, scope="function"), idempotency_key: str | None = IDEMPOTENCY_KEY) -> Any:
    data = b""
    if photo is not None and photo.filename:
        data = await photo.read(MAX_PHOTO + 1)
        if len(data) > MAX_PHOTO:
            raise InvalidInput(Msg('the photo is larger than 5 MiB'), fix=Msg('Send a smaller photo.'))
        if not (data.startswith(b"\xff\xd8\xff") or data.startswith(b"\x89PNG\r\n\x1a\n")):
            raise InvalidInput(Msg('the photo is not a JPEG or PNG image'), fix=Msg('Send a JPEG or PNG photo.'))
    fields = {"lon": lon, "lat": lat, "category_code": category_code, "description": description,
              "priority": priority, "photo_sha256": hashlib.sha256(data).hexdigest() if data else None}

    def work() -> service.IntakeResult:
        media_url = _store_photo(request, data, "jpg" if data[:2] == b"\xff\xd8" else "png") if data else None
        command = service.IntakeCommand(channel="inspector", description=description, lon=lon, lat=lat,
                                        category_code=category_code, priority=priority, media_url=media_url,
                                        reporter_user_id=p.user_id)
        return service.submit(session=session, command=command, actor=actor_of(p), classifier=_classifier(request))

    return await run_in_threadpool(_intake, request, session, p, idempotency_key, fields, work)


def _store_photo(request: Request, data: bytes, ext: str) -> str:
    name = f"{hashlib.sha256(data).hexdigest()[:32]}.{ext}"
    folder = Path(request.app.state.settings.data_dir) / "media"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return f"/api/v1/ops/media/{name}"


@router.get("/media/{name}", summary="A photo attached to a report")
def media(name: str, request: Request, _: Principal = Depends(allow(*STAFF))):
    from fastapi.responses import FileResponse

    from citybase.core.errors import NotFound

    folder = (Path(request.app.state.settings.data_dir) / "media").resolve()
    target = (folder / name).resolve()
    if target.parent != folder or not target.is_file():
        raise NotFound(Msg('no photo {name!r}', name=name), fix=Msg('Use the media_url of an incident.'))
    return FileResponse(target)
