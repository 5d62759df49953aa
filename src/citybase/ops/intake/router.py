"""HTTP API of intake (mounted under /api/v1/ops): the internal API, the 12345 hotline, grid inspectors'
reports with a photo, and the photos. Open311 has its own router (``intake.open311``), mounted at /open311/v2."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from sqlalchemy.orm import Session

from citybase.core.errors import InvalidInput
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


def _intake_read(request: Request, p: Principal, r: service.IntakeResult, session: Session) -> IntakeRead:
    masked = not _sees_contact(p, r.incident)
    if not masked:
        _audit_contact(request, p, [r.incident.id])
    return IntakeRead(incident=IncidentRead.of(r.incident, masked=masked, names=_names(session)),
                      merged_into=r.merged_into.code if r.merged_into else None,
                      possible_duplicates=[{"incident_id": i, "similarity": s, "metres": m}
                                           for i, s, m in r.possible_duplicates])


@router.post("/incidents", response_model=IntakeRead, status_code=201, summary="Report an incident (internal API)")
def create_incident(body: IncidentCreate, request: Request, p: Principal = Depends(allow(*DISPATCH)),
                    session: Session = Depends(get_session)) -> IntakeRead:
    r = service.intake(session=session, channel="api", actor=actor_of(p), classifier=_classifier(request),
                       **body.model_dump())
    _done(request, session, p)
    return _intake_read(request, p, r, session)


@router.post("/hotline", response_model=IntakeRead, status_code=201, summary="12345 hotline: a call taken by an operator")
def hotline(body: HotlineCall, request: Request, p: Principal = Depends(allow(*DISPATCH)),
            session: Session = Depends(get_session)) -> IntakeRead:
    r = service.intake(session=session, channel="hotline", actor=actor_of(p), description=body.text,
                       address=body.address, reporter_name=body.caller_name, reporter_phone=body.caller_phone,
                       priority=body.priority, classifier=_classifier(request))
    _done(request, session, p)
    return _intake_read(request, p, r, session)


@router.post("/inspections", response_model=IntakeRead, status_code=201, summary="A grid inspector's report (网格员)")
async def inspection(request: Request, lon: float = Form(..., ge=-180, le=180), lat: float = Form(..., ge=-90, le=90),
                     category_code: str = Form(...), description: str = Form(..., min_length=1, max_length=2000),
                     priority: str | None = Form(None, pattern="^(urgent|normal|low)$"),
                     photo: UploadFile | None = File(None), p: Principal = Depends(allow("grid_inspector", "admin")),
                     session: Session = Depends(get_session)) -> IntakeRead:
    media_url = None
    if photo is not None and photo.filename:
        data = await photo.read(MAX_PHOTO + 1)
        if len(data) > MAX_PHOTO:
            raise InvalidInput("the photo is larger than 5 MiB", fix="Send a smaller photo.")
        if not (data.startswith(b"\xff\xd8\xff") or data.startswith(b"\x89PNG\r\n\x1a\n")):
            raise InvalidInput("the photo is not a JPEG or PNG image", fix="Send a JPEG or PNG photo.")
        media_url = _store_photo(request, data, "jpg" if data[:2] == b"\xff\xd8" else "png")
    r = service.intake(session=session, channel="inspector", actor=actor_of(p), description=description, lon=lon,
                       lat=lat, category_code=category_code, priority=priority, media_url=media_url,
                       reporter_user_id=p.user_id, classifier=_classifier(request))
    _done(request, session, p)
    return _intake_read(request, p, r, session)


def _store_photo(request: Request, data: bytes, ext: str) -> str:
    import hashlib

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
        raise NotFound(f"no photo {name!r}", fix="Use the media_url of an incident.")
    return FileResponse(target)
