"""HTTP API of the workflow (mounted under /api/v1/ops): reading incidents and tasks, one route per action of
the workflow table (``states.TRANSITIONS``), the table itself, and supervision (督办)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.orm import Session

from citybase.core.errors import Forbidden, InvalidInput
from citybase.core.i18n import Msg
from citybase.core.schemas import FilterText, Id, Page, PageNo, PageSize
from citybase.ops.http import (
    CONTACT_ROLES,
    _audit_contact,
    _done,
    _names,
    _sees_contact,
    _sees_contact_of,
    actor_of,
)
from citybase.ops.workflow import service, states
from citybase.ops.workflow.schemas import (
    ActionBody,
    IncidentDetail,
    IncidentRead,
    ReporterRead,
    TaskRead,
    TaskWithIncident,
    TimelineRead,
)
from citybase.ops.workflow.service import Actor
from citybase.ops.workflow.states import DISPATCH, HANDLE
from citybase.security.deps import allow, get_session
from citybase.security.pii import audit_filter
from citybase.security.roles import PUBLIC, STAFF
from citybase.security.service import Principal

router = APIRouter(prefix="/ops", tags=["一网统管 incident loop"])


@router.get("/workflow", summary="The workflow table: states, and each action's allowed states and results")
def workflow(_: Principal = Depends(allow(PUBLIC))) -> dict:
    return states.as_json()


@router.get("/incidents", response_model=Page[IncidentRead], summary="Incidents, most urgent first")
def list_incidents(request: Request, status: FilterText | None = Query(None, description="comma-separated statuses"),
                   department_id: Id | None = None, street_id: Id | None = None, grid_id: Id | None = None,
                   street_code: FilterText | None = None,
                   category_code: FilterText | None = None, channel: FilterText | None = None,
                   q: FilterText | None = Query(None, description="an incident code, or words of the description as you see "
                                                          "it (masked where your role sees it masked)"),
                   page: PageNo = 1, page_size: PageSize = 50,
                   p: Principal = Depends(allow(*STAFF)), session: Session = Depends(get_session, scope="function")) -> Page[IncidentRead]:
    statuses = [s.strip() for s in status.split(",") if s.strip()] if status else None
    rows, total = service.list_incidents(session=session, statuses=statuses, department_id=department_id,
                                         street_id=street_id, grid_id=grid_id, street_code=street_code,
                                         category_code=category_code, channel=channel, q=q, page=page,
                                         page_size=page_size,
                                         sees_text_of=None if "dispatcher" in p.roles else
                                         (lambda dept: _sees_contact_of(p, dept)))
    if q and CONTACT_ROLES & p.roles:  # a search of texts seen in full: who looked for what, and found which
        audit_filter(request, p, subject_type="incident", used=["q"], ids=[r.id for r in rows])
    visible = [r.id for r in rows if _sees_contact(p, r)]
    _audit_contact(request, p, visible)
    names = _names(session)
    return Page(items=[IncidentRead.of(r, masked=r.id not in visible, names=names) for r in rows], total=total, page=page,
                page_size=page_size)


@router.get("/incidents/{incident_id}", response_model=IncidentDetail, summary="An incident with tasks and timeline")
def get_incident(incident_id: Id, request: Request, p: Principal = Depends(allow(*STAFF)),
                 session: Session = Depends(get_session, scope="function")) -> IncidentDetail:
    inc = service.get_incident(session=session, incident_id=incident_id)
    return _detail(request, p, session, inc)


def _detail(request: Request, p: Principal, session: Session, inc: service.Incident) -> IncidentDetail:
    masked = not _sees_contact(p, inc)
    if not masked:
        _audit_contact(request, p, [inc.id])
    names = _names(session)
    base = IncidentRead.of(inc, masked=masked, names=names).model_dump()
    return IncidentDetail(**base, tasks=[TaskRead.of(t, names, masked=masked)
                                         for t in service.tasks_of(session=session, incident_id=inc.id)],
                          timeline=[TimelineRead.of(e, masked=masked)
                                    for e in service.timeline(session=session, incident_id=inc.id)],
                          reporters=[ReporterRead.of(r, masked=masked)
                                     for r in service.reporters(session=session, incident_id=inc.id)])


@router.get("/tasks", response_model=list[TaskWithIncident], summary="My department's open tasks, with their incidents")
def my_tasks(request: Request, status: FilterText = Query("pending,accepted"), p: Principal = Depends(allow(*HANDLE)),
             session: Session = Depends(get_session, scope="function")) -> list[TaskWithIncident]:
    if p.department_id is None:
        raise Forbidden(Msg('your account belongs to no department'), fix=Msg('Ask an admin to set your department.'))
    tasks = service.department_tasks(session=session, department_id=p.department_id,
                                     statuses=[s.strip() for s in status.split(",")])
    incidents = service.incidents_by_id(session=session, ids={t.incident_id for t in tasks})
    names = _names(session)
    visible = [i for i in incidents.values() if _sees_contact(p, i)]
    _audit_contact(request, p, [i.id for i in visible])
    return [TaskWithIncident(**TaskRead.of(t, names, masked=False).model_dump(),  # the department's own task
                             incident=IncidentRead.of(incidents[t.incident_id], masked=incidents[t.incident_id] not in visible,
                                                      names=names))
            for t in tasks]


@router.get("/my-reports", response_model=list[IncidentRead], summary="The incidents I reported")
def my_reports(p: Principal = Depends(allow("citizen", "grid_inspector")),
               session: Session = Depends(get_session, scope="function")) -> list[IncidentRead]:
    names = _names(session)
    return [IncidentRead.of(i, masked=False, names=names) for i in service.reported_by(session=session, user_id=p.user_id)]


# One route per action a person takes; who may, and what it does, come from the workflow table.
ACTIONS: dict[str, tuple[tuple[str, ...], str]] = {a: (t.roles, t.summary) for a, t in states.api_actions().items()}


def _run(action: str, session: Session, inc: service.Incident, a: Actor, b: ActionBody, p: Principal) -> None:
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
            raise InvalidInput(Msg('into_id is missing'), fix=Msg('Say which incident this one duplicates.'))
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
            raise InvalidInput(Msg('approve is missing'), fix=Msg('Send approve: true or false.'))
        s.decide_extension(session=session, incident=inc, actor=a, approve=b.approve, note=b.note)
    elif action == "verify":
        if b.passed is None:
            raise InvalidInput(Msg('passed is missing'), fix=Msg('Send passed: true (fixed) or false (not fixed).'))
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
                raise Forbidden(Msg('only a reporter of this incident may rate it'), fix=Msg('Rate the incidents you reported.'))
        s.rate(session=session, incident=inc, actor=a, rating=b.rating or "", comment=b.comment)


def _make_action_route(action: str, roles: tuple[str, ...], summary: str) -> None:
    def endpoint(incident_id: Id, request: Request, body: ActionBody | None = None,
                 p: Principal = Depends(allow(*roles)), session: Session = Depends(get_session, scope="function")) -> IncidentDetail:
        inc = service.get_incident(session=session, incident_id=incident_id, lock=True)
        _run(action, session, inc, actor_of(p), body or ActionBody(), p)
        _done(request, session, p)
        return _detail(request, p, session, inc)

    endpoint.__name__ = f"incident_{action.replace('-', '_')}"
    router.add_api_route(f"/incidents/{{incident_id}}/{action}", endpoint, methods=["POST"],
                         response_model=IncidentDetail, summary=summary, description=states.description(action))


for _action, (_roles, _summary) in ACTIONS.items():
    _make_action_route(_action, _roles, _summary)

@router.post("/supervision/sweep", summary="Raise 督办 for every overdue incident")
def sweep(request: Request, p: Principal = Depends(allow(*DISPATCH)), session: Session = Depends(get_session, scope="function")) -> dict:
    raised = service.supervise_overdue(session=session)
    _done(request, session, p)
    return {"raised": len(raised), "incident_ids": [s.incident_id for s in raised]}


@router.get("/supervisions", summary="Open supervisions (督办)")
def supervisions(department_id: Id | None = None, _: Principal = Depends(allow(*STAFF)),
                 session: Session = Depends(get_session, scope="function")) -> list[dict]:
    return [{"id": s.id, "incident_id": s.incident_id, "department_id": s.department_id, "reason": s.reason,
             "created_at": s.created_at} for s in service.open_supervisions(session=session, department_id=department_id)]


__all__ = ["router"]
