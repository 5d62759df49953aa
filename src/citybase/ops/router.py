"""HTTP API of the incident loop (mounted under /api/v1/ops)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from citybase.bus import Context
from citybase.core.errors import Forbidden, InvalidInput
from citybase.core.schemas import FilterText, Id, Page, PageNo, PageSize
from citybase.core.timeutil import utcnow
from citybase.geo import service as geo
from citybase.ops import flows, metrics, service
from citybase.ops.models import Incident, Supervision, Task
from citybase.ops.schemas import (
    ActionBody,
    CategoryRead,
    CategoryWrite,
    HotlineCall,
    IncidentCreate,
    IncidentDetail,
    IncidentRead,
    IntakeRead,
    Names,
    ReporterRead,
    RuleRead,
    RuleWrite,
    TaskRead,
    TaskWithIncident,
    TimelineRead,
)
from citybase.ops.service import Actor
from citybase.security import audit
from citybase.security.deps import allow, get_session, request_id
from citybase.security.roles import PUBLIC, STAFF
from citybase.security.service import Principal
from citybase.storage.paging import page_of
from citybase.storage.text import contains

router = APIRouter(prefix="/ops", tags=["一网统管 incident loop"])
CONTACT_ROLES = frozenset({"dispatcher", "handler"})  # they call reporters back (先行联系, 回访)
DISPATCH = ("dispatcher", "admin")
HANDLE = ("handler", "admin")
MAX_PHOTO = 5 * 1024 * 1024


def actor_of(p: Principal) -> Actor:
    return Actor(name=p.actor, user_id=p.user_id, roles=p.roles, department_id=p.department_id)


def _ctx(request: Request, p: Principal) -> Context:
    return Context(id=request_id(request), user_id=str(p.user_id) if p.user_id else None)


def _done(request: Request, session: Session, p: Principal) -> None:
    flows.commit_and_publish(session, request.app.state.bus, _ctx(request, p))


def _sees_contact(p: Principal, inc: Incident) -> bool:
    if "dispatcher" in p.roles:
        return True
    return "handler" in p.roles and p.department_id is not None and p.department_id == inc.main_department_id


def _audit_contact(request: Request, p: Principal, ids: list[int]) -> None:
    if ids:
        audit.record(request.app.state.engine, actor=p.actor, roles=",".join(sorted(p.roles)),
                     action="read.incident_reporter.unmasked", subject_type="incident", subject_ids=ids,
                     fields=["reporter_name", "reporter_phone"], request_id=request_id(request))


def _names(session: Session) -> Names:
    from citybase.registry import service as registry

    return Names(areas=geo.areas_by_id(session=session),
                 departments={d.id: d.name for d in registry.list_departments(session=session)})


def _classifier(request: Request) -> Any:
    return getattr(request.app.state, "classifier", None)


def _intake_read(request: Request, p: Principal, r: service.IntakeResult, session: Session) -> IntakeRead:
    masked = not _sees_contact(p, r.incident)
    if not masked:
        _audit_contact(request, p, [r.incident.id])
    return IntakeRead(incident=IncidentRead.of(r.incident, masked=masked, names=_names(session)),
                      merged_into=r.merged_into.code if r.merged_into else None,
                      possible_duplicates=[{"incident_id": i, "similarity": s, "metres": m}
                                           for i, s, m in r.possible_duplicates])


# ---------------------------------------------------------------- catalogue and rules


@router.get("/categories", response_model=list[CategoryRead], summary="The category tree (部件/事件)")
def list_categories(_: Principal = Depends(allow(PUBLIC)), session: Session = Depends(get_session)) -> list[CategoryRead]:
    return [CategoryRead.of(c) for c in service.list_categories(session=session)]


@router.put("/categories/{code}", response_model=CategoryRead, summary="Create or change a category")
def put_category(code: FilterText, body: CategoryWrite, _: Principal = Depends(allow("admin")),
                 session: Session = Depends(get_session)) -> CategoryRead:
    return CategoryRead.of(service.upsert_category(session=session, code=code, **body.model_dump()))


@router.get("/rules", response_model=list[RuleRead], summary="Active responsibility rules (权责清单)")
def list_rules(_: Principal = Depends(allow(*STAFF)), session: Session = Depends(get_session)) -> list[RuleRead]:
    return [RuleRead.of(r) for r in service.active_rules(session=session)]


@router.post("/rules", response_model=RuleRead, status_code=201, summary="Add a rule or a new version of one")
def add_rule(body: RuleWrite, _: Principal = Depends(allow("admin")), session: Session = Depends(get_session)) -> RuleRead:
    return RuleRead.of(service.add_rule(session=session, **body.model_dump()))


@router.delete("/rules/{rule_id}", response_model=RuleRead, summary="Retire a rule (history keeps it)")
def retire_rule(rule_id: Id, _: Principal = Depends(allow("admin")), session: Session = Depends(get_session)) -> RuleRead:
    return RuleRead.of(service.retire_rule(session=session, rule_id=rule_id))


@router.get("/route", summary="Which department a category goes to at a point, and which rule says so")
def preview_route(category_code: FilterText, lon: float, lat: float, _: Principal = Depends(allow(*STAFF)),
                  session: Session = Depends(get_session)) -> dict:
    service.get_category(session=session, code=category_code)
    loc = geo.locate(session=session, lon=lon, lat=lat)
    d = service.route(session=session, category_code=category_code, grid_id=loc.grid.id,
                      community_id=loc.community.id, street_id=loc.street.id)
    return {"rule_id": d.rule_id, "main_department_id": d.main_department_id,
            "assist_department_ids": list(d.assist_department_ids), "why": d.why}


@router.post("/classify", summary="Suggested categories with confidence for a text")
def classify(body: dict, request: Request, _: Principal = Depends(allow("dispatcher", "grid_inspector", "admin"))) -> list[dict]:
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("text is missing", fix='Send {"text": "…"}.')
    return [{"code": c, "confidence": round(conf, 4)} for c, conf in service.suggest(text, _classifier(request))]


# ---------------------------------------------------------------- intake


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


# ---------------------------------------------------------------- reading


LIGHT_ORDER = ("red", "yellow", "green", "grey")


@router.get("/incidents", response_model=Page[IncidentRead], summary="Incidents, most urgent first")
def list_incidents(request: Request, status: FilterText | None = Query(None, description="comma-separated statuses"),
                   department_id: Id | None = None, street_id: Id | None = None, grid_id: Id | None = None,
                   street_code: FilterText | None = None,
                   category_code: FilterText | None = None, channel: FilterText | None = None,
                   q: FilterText | None = None, page: PageNo = 1, page_size: PageSize = 50,
                   p: Principal = Depends(allow(*STAFF)), session: Session = Depends(get_session)) -> Page[IncidentRead]:
    query = select(Incident)
    if status:
        statuses = [s.strip() for s in status.split(",") if s.strip()]
        unknown = set(statuses) - set(service.OPEN) - set(service.TERMINAL)
        if unknown:
            raise InvalidInput(f"unknown status {', '.join(sorted(unknown))}",
                               fix=f"Use {', '.join(service.OPEN + service.TERMINAL)}.")
        query = query.where(Incident.status.in_(statuses))
    for col, val in ((Incident.main_department_id, department_id), (Incident.street_id, street_id),
                     (Incident.grid_id, grid_id), (Incident.category_code, category_code), (Incident.channel, channel)):
        if val is not None:
            query = query.where(col == val)
    if street_code:
        query = query.where(Incident.street_id == geo.get_area(session=session, code=street_code).id)
    if q:
        query = query.where(contains(Incident.description, q) | (Incident.code == q))
    now = utcnow()
    # red (past deadline) first, then yellow, then the rest; within each, the nearest deadline first
    light = case((Incident.deadline_at.is_(None), 3), (Incident.deadline_at < now, 0), (Incident.warn_at <= now, 1),
                 else_=2)
    query = query.order_by(light, Incident.deadline_at.is_(None), Incident.deadline_at, Incident.id)
    rows, total = page_of(session, query, page, page_size)
    visible = [r.id for r in rows if _sees_contact(p, r)]
    _audit_contact(request, p, visible)
    names = _names(session)
    return Page(items=[IncidentRead.of(r, masked=r.id not in visible, names=names) for r in rows], total=total, page=page,
                page_size=page_size)


@router.get("/incidents/{incident_id}", response_model=IncidentDetail, summary="An incident with tasks and timeline")
def get_incident(incident_id: Id, request: Request, p: Principal = Depends(allow(*STAFF)),
                 session: Session = Depends(get_session)) -> IncidentDetail:
    inc = service.get_incident(session=session, incident_id=incident_id)
    return _detail(request, p, session, inc)


def _detail(request: Request, p: Principal, session: Session, inc: Incident) -> IncidentDetail:
    masked = not _sees_contact(p, inc)
    if not masked:
        _audit_contact(request, p, [inc.id])
    names = _names(session)
    base = IncidentRead.of(inc, masked=masked, names=names).model_dump()
    return IncidentDetail(**base, tasks=[TaskRead.of(t, names) for t in service.tasks_of(session=session, incident_id=inc.id)],
                          timeline=[TimelineRead.of(e) for e in service.timeline(session=session, incident_id=inc.id)],
                          reporters=[ReporterRead.of(r, masked=masked)
                                     for r in service.reporters(session=session, incident_id=inc.id)])


@router.get("/tasks", response_model=list[TaskWithIncident], summary="My department's open tasks, with their incidents")
def my_tasks(request: Request, status: FilterText = Query("pending,accepted"), p: Principal = Depends(allow(*HANDLE)),
             session: Session = Depends(get_session)) -> list[TaskWithIncident]:
    if p.department_id is None:
        raise Forbidden("your account belongs to no department", fix="Ask an admin to set your department.")
    q = select(Task).where(Task.department_id == p.department_id,
                           Task.status.in_([s.strip() for s in status.split(",")])).order_by(Task.id).limit(500)
    tasks = list(session.scalars(q))
    incidents = {i.id: i for i in session.scalars(select(Incident).where(Incident.id.in_({t.incident_id for t in tasks})))}
    names = _names(session)
    visible = [i for i in incidents.values() if _sees_contact(p, i)]
    _audit_contact(request, p, [i.id for i in visible])
    return [TaskWithIncident(**TaskRead.of(t, names).model_dump(),
                             incident=IncidentRead.of(incidents[t.incident_id], masked=incidents[t.incident_id] not in visible,
                                                      names=names))
            for t in tasks]


@router.get("/my-reports", response_model=list[IncidentRead], summary="The incidents I reported")
def my_reports(p: Principal = Depends(allow("citizen", "grid_inspector")),
               session: Session = Depends(get_session)) -> list[IncidentRead]:
    q = select(Incident).where(Incident.reporter_user_id == p.user_id).order_by(Incident.id.desc()).limit(200)
    names = _names(session)
    return [IncidentRead.of(i, masked=False, names=names) for i in session.scalars(q)]


# ---------------------------------------------------------------- the workflow

ACTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "register": (DISPATCH, "立案: confirm category and priority; the clock starts"),
    "reject": (DISPATCH, "不予立案 with a reason"),
    "dispatch": (DISPATCH, "派遣 to the main and assisting departments"),
    "merge": (DISPATCH, "merge into another incident (into_id)"),
    "accept": (HANDLE, "a department accepts its task"),
    "return": (HANDLE, "退单: back to the dispatcher with a reason"),
    "complete": (HANDLE, "a department reports its task done (result)"),
    "first-contact": (HANDLE, "先行联系: the reporter was called"),
    "extension": (HANDLE, "延期 requested (days, reason)"),
    "extension-decision": (DISPATCH, "approve or refuse a pending extension"),
    "verify": (("grid_inspector", "dispatcher", "admin"), "核查 on site: passed or not, with a note"),
    "close": (DISPATCH, "结案 after review"),
    "suspend": (DISPATCH, "挂起: the clock stops"),
    "resume": (DISPATCH, "the clock runs again"),
    "rate": (("citizen", "dispatcher", "admin"), "the reporter's rating: 满意 / 基本满意 / 不满意"),
}


def _run(action: str, session: Session, inc: Incident, a: Actor, b: ActionBody, p: Principal) -> None:
    s = service
    if action == "register":
        s.register(session=session, incident=inc, actor=a, category_code=b.category_code, priority=b.priority)
    elif action == "reject":
        s.reject(session=session, incident=inc, actor=a, reason=b.reason or "")
    elif action == "dispatch":
        s.dispatch(session=session, incident=inc, actor=a, main_department_id=b.main_department_id,
                   assist_department_ids=b.assist_department_ids)
    elif action == "merge":
        if b.into_id is None:
            raise InvalidInput("into_id is missing", fix="Say which incident this one duplicates.")
        s.merge(session=session, incident=inc, into=s.get_incident(session=session, incident_id=b.into_id), actor=a,
                reason=b.reason or "派单员合并重复工单")
    elif action == "accept":
        s.accept(session=session, incident=inc, actor=a, task_id=b.task_id)
    elif action == "return":
        s.return_task(session=session, incident=inc, actor=a, reason=b.reason or "", task_id=b.task_id)
    elif action == "complete":
        s.complete_task(session=session, incident=inc, actor=a, result=b.result or "", task_id=b.task_id)
    elif action == "first-contact":
        s.first_contact(session=session, incident=inc, actor=a, note=b.note or "已电话联系报告人")
    elif action == "extension":
        s.request_extension(session=session, incident=inc, actor=a, days=b.days or 0, reason=b.reason or "")
    elif action == "extension-decision":
        if b.approve is None:
            raise InvalidInput("approve is missing", fix="Send approve: true or false.")
        s.decide_extension(session=session, incident=inc, actor=a, approve=b.approve, note=b.note)
    elif action == "verify":
        if b.passed is None:
            raise InvalidInput("passed is missing", fix="Send passed: true (fixed) or false (not fixed).")
        s.verify(session=session, incident=inc, actor=a, passed=b.passed, note=b.note or "")
    elif action == "close":
        s.close(session=session, incident=inc, actor=a, reason=b.reason or "")
    elif action == "suspend":
        s.suspend(session=session, incident=inc, actor=a, reason=b.reason or "")
    elif action == "resume":
        s.resume(session=session, incident=inc, actor=a)
    elif action == "rate":
        if "citizen" in p.roles and not ({"dispatcher", "admin"} & p.roles):
            mine = {r.user_id for r in s.reporters(session=session, incident_id=inc.id)}
            if p.user_id not in mine:
                raise Forbidden("only a reporter of this incident may rate it", fix="Rate the incidents you reported.")
        s.rate(session=session, incident=inc, actor=a, rating=b.rating or "", comment=b.comment)


def _make_action_route(action: str, roles: tuple[str, ...], summary: str) -> None:
    def endpoint(incident_id: Id, request: Request, body: ActionBody | None = None,
                 p: Principal = Depends(allow(*roles)), session: Session = Depends(get_session)) -> IncidentDetail:
        inc = service.get_incident(session=session, incident_id=incident_id, lock=True)
        _run(action, session, inc, actor_of(p), body or ActionBody(), p)
        _done(request, session, p)
        return _detail(request, p, session, inc)

    endpoint.__name__ = f"incident_{action.replace('-', '_')}"
    router.add_api_route(f"/incidents/{{incident_id}}/{action}", endpoint, methods=["POST"],
                         response_model=IncidentDetail, summary=summary)


for _action, (_roles, _summary) in ACTIONS.items():
    _make_action_route(_action, _roles, _summary)


# ---------------------------------------------------------------- supervision and metrics


@router.post("/supervision/sweep", summary="Raise 督办 for every overdue incident")
def sweep(request: Request, p: Principal = Depends(allow(*DISPATCH)), session: Session = Depends(get_session)) -> dict:
    raised = service.supervise_overdue(session=session)
    _done(request, session, p)
    return {"raised": len(raised), "incident_ids": [s.incident_id for s in raised]}


@router.get("/supervisions", summary="Open supervisions (督办)")
def supervisions(department_id: Id | None = None, _: Principal = Depends(allow(*STAFF)),
                 session: Session = Depends(get_session)) -> list[dict]:
    q = select(Supervision).where(Supervision.resolved_at.is_(None)).order_by(Supervision.id.desc()).limit(500)
    if department_id is not None:
        q = q.where(Supervision.department_id == department_id)
    return [{"id": s.id, "incident_id": s.incident_id, "department_id": s.department_id, "reason": s.reason,
             "created_at": s.created_at} for s in session.scalars(q)]


@router.get("/metrics", summary="按期办结率, 满意率, 重复率, 退单率, 先行联系率… by department, street, grid or category")
def get_metrics(by: str = Query("department", pattern="^(department|street|grid|category|channel|all)$"),
                since: datetime | None = None, until: datetime | None = None,
                _: Principal = Depends(allow("analyst", "dispatcher", "admin")),
                session: Session = Depends(get_session)) -> list[dict]:
    return metrics.compute(session=session, by=by, since=since, until=until)


@router.get("/hotspots", summary="Grids with the most incidents, and problems that keep coming back")
def hotspots(days: int = Query(30, ge=1, le=365), limit: int = Query(10, ge=1, le=100),
             _: Principal = Depends(allow("analyst", "dispatcher", "admin")),
             session: Session = Depends(get_session)) -> dict:
    return metrics.hotspots(session=session, days=days, limit=limit)


@router.get("/stats", summary="Counts of incidents by status (for the screens)")
def ops_stats(_: Principal = Depends(allow(PUBLIC)), session: Session = Depends(get_session)) -> dict:
    rows = session.execute(select(Incident.status, func.count()).group_by(Incident.status))
    return {status: n for status, n in rows}


__all__ = ["router", "ReporterRead"]


# ---------------------------------------------------------------- webhooks


@router.get("/webhooks", summary="Department systems that receive incident events")
def list_webhooks(_: Principal = Depends(allow("admin")), session: Session = Depends(get_session)) -> list[dict]:
    from citybase.ops.models import Webhook

    return [{"id": w.id, "department_id": w.department_id, "url": w.url, "events": w.events, "active": w.active}
            for w in session.scalars(select(Webhook).order_by(Webhook.id))]


@router.post("/webhooks", status_code=201, summary="Subscribe a department system to incident events")
def add_webhook(body: dict, _: Principal = Depends(allow("admin")), session: Session = Depends(get_session)) -> dict:
    import secrets

    from citybase.ops.models import Webhook
    from citybase.registry import service as registry

    url = body.get("url") if isinstance(body, dict) else None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise InvalidInput("url must be an http(s) URL", fix='Send {"url": "https://…", "events": "citybase.ops.>"}.')
    events = body.get("events") or "citybase.ops.>"
    if not isinstance(events, str) or not events.startswith("citybase.ops."):
        raise InvalidInput("events must be a subject pattern under citybase.ops.",
                           fix="e.g. citybase.ops.> or citybase.ops.incident.dispatch")
    dept = body.get("department_code")
    dept_id = registry.get_department(session=session, code=dept).id if dept else None
    hook = Webhook(department_id=dept_id, url=url, secret=body.get("secret") or secrets.token_hex(16), events=events,
                   active=True, created_at=utcnow())
    session.add(hook)
    session.flush()
    from citybase.ops.workers import forget_webhooks

    forget_webhooks()
    return {"id": hook.id, "department_id": dept_id, "url": url, "events": events, "secret": hook.secret}


@router.get("/webhooks/{webhook_id}/deliveries", summary="The delivery log of a webhook")
def webhook_deliveries(webhook_id: Id, limit: int = Query(100, ge=1, le=1000), _: Principal = Depends(allow("admin")),
                       session: Session = Depends(get_session)) -> list[dict]:
    from citybase.ops.models import WebhookDelivery

    q = (select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
         .order_by(WebhookDelivery.id.desc()).limit(limit))
    return [{"event_id": d.event_id, "subject": d.subject, "attempt": d.attempt, "status": d.status,
             "response_code": d.response_code, "error": d.error, "at": d.at} for d in session.scalars(q)]
