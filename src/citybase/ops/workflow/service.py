"""The workflow of an incident: 受理 → 立案 → 派遣 → 处置 → 核查 → 结案 with its side paths (退单, 挂起,
延期, 合并, 不予立案, the reporter's rating), deadlines and supervision (督办).

Which step is allowed from which state, and where it leads, is the one table in ``states``; ``_require``
checks every step against it. Functions take ``session`` keyword-only and never commit. Every step
appends a timeline entry and queues an event in the transactional outbox (``citybase.kernel.outbox.queue``);
the relay publishes it after the caller commits."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from citybase.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from citybase.core.i18n import Msg
from citybase.core.timeutil import SHANGHAI, as_utc, utcnow
from citybase.geo import service as geo
from citybase.kernel import outbox
from citybase.ops.catalogue.defaults import PRIORITIES
from citybase.ops.catalogue.models import Category
from citybase.ops.catalogue.service import get_category, route
from citybase.ops.classification.models import ClassifierFeedback
from citybase.ops.notifications.repository import ReporterRepository
from citybase.ops.notifications.service import _notify_reporters, reporters
from citybase.ops.workflow import deadlines, states
from citybase.ops.workflow.models import Incident, Supervision, Task, TimelineEntry
from citybase.ops.workflow.repository import IncidentRepository
from citybase.ops.workflow.states import OPEN, TERMINAL
from citybase.ops.workflow.states import Status as S
from citybase.registry import service as registry

__all__ = ["OPEN", "TERMINAL", "reporters"]  # reporters: notifications' reader, used beside the steps


@dataclass(frozen=True)
class Actor:
    """Who acts: a name for the timeline, the user id, roles and department (None for the system)."""

    name: str
    user_id: int | None = None
    roles: frozenset[str] = frozenset()
    department_id: int | None = None


SYSTEM = Actor("system", roles=frozenset({"system"}))


RATINGS = ("满意", "基本满意", "不满意")


def _step(session: Session, inc: Incident, actor: Actor, action: str, to_status: str, *, reason: str | None = None,
          **data: Any) -> TimelineEntry:
    now = utcnow()
    entry = TimelineEntry(incident_id=inc.id, at=now, actor=actor.name, action=action, from_status=inc.status,
                          to_status=to_status, reason=reason, data=json.dumps(data, ensure_ascii=False, default=str))
    inc.status = to_status
    inc.updated_at = now
    session.add(entry)
    outbox.queue(session, f"citybase.ops.incident.{action}", {
        "incident_id": inc.id, "code": inc.code, "status": to_status, "category_code": inc.category_code,
        "main_department_id": inc.main_department_id, "street_id": inc.street_id, "grid_id": inc.grid_id,
        "actor": actor.name, "reason": reason, **{k: v for k, v in data.items() if isinstance(v, str | int | float)}})
    return entry


def get_incident(*, session: Session, incident_id: int, lock: bool = False) -> Incident:
    """The incident, or NotFound. ``lock`` takes its row lock on PostgreSQL (FOR UPDATE) so a step waits for
    a concurrent one; SQLite has no row locks, and there the version column makes the later of two
    conflicting steps fail at flush (StaleDataError, answered 409) instead of overwriting the first."""
    inc = IncidentRepository(session).incident(incident_id, lock=lock)
    if inc is None:
        raise NotFound(Msg('no incident #{incident_id}', incident_id=incident_id), fix=Msg('List incidents with GET /api/v1/ops/incidents.'))
    return inc


def _require(inc: Incident, action: str) -> None:
    allowed, what = states.allowed_from(action), states.verb(action)  # the one transition table says
    if inc.suspended_at is not None and action != "resume":
        raise Conflict(Msg('incident {code} is suspended (挂起); {what} is not possible now', code=inc.code, what=what),
                       fix=Msg('Resume it first with the resume action.'))
    if inc.status not in allowed:
        raise Conflict(Msg('cannot {what} incident {code} while it is {status}', what=what, code=inc.code, status=inc.status),
                       fix=Msg('{what} is possible only when the incident is {items}.', what=what, items=' or '.join(allowed)),
                       status_now=inc.status)


def _start_clock(inc: Incident, cat: Category, now: datetime) -> None:
    if inc.priority == "urgent":
        mode, budget = "natural", cat.urgent_hours * 3600
    else:
        days = cat.normal_days if inc.priority == "normal" else cat.low_days
        mode, budget = "working", days * deadlines.WORKDAY_SECONDS
    inc.deadline_mode, inc.budget_seconds = mode, budget
    inc.warn_at, inc.deadline_at = deadlines.plan(now, mode=mode, budget_seconds=budget)


def register(*, session: Session, incident: Incident, actor: Actor, category_code: str | None = None,
             priority: str | None = None, now: datetime | None = None) -> Incident:
    """立案: confirm category and priority; the deadline clock starts. A changed category is kept as
    feedback for the next classifier training and re-routes the incident."""
    _require(incident, "register")
    now = now or utcnow()
    if priority is not None:
        if priority not in PRIORITIES:
            raise InvalidInput(Msg('unknown priority {priority!r}', priority=priority), fix=Msg('Use one of {items}.', items=', '.join(PRIORITIES)))
        incident.priority = priority
    if category_code and category_code != incident.category_code:
        get_category(session=session, code=category_code)
        session.add(ClassifierFeedback(incident_id=incident.id, text=incident.description,
                                       suggested_code=incident.suggested_code, chosen_code=category_code,
                                       actor=actor.name, created_at=now))
        incident.category_code = category_code
        d = route(session=session, category_code=category_code, grid_id=incident.grid_id,
                  community_id=incident.community_id, street_id=incident.street_id, at=now)
        incident.routing, incident.main_department_id = d.as_json(), d.main_department_id
    incident.category_confirmed = True
    cat = get_category(session=session, code=incident.category_code)
    _start_clock(incident, cat, now)
    incident.registered_at = now
    _step(session, incident, actor, "register", S.REGISTERED, category_code=incident.category_code,
          priority=incident.priority, deadline_at=incident.deadline_at.isoformat())
    return incident


def reject(*, session: Session, incident: Incident, actor: Actor, reason: str) -> Incident:
    """不予立案 with a reason; the reporters are told."""
    _require(incident, "reject")
    if not reason or not reason.strip():
        raise InvalidInput(Msg('a rejection needs a reason'), fix=Msg('Say why the report is not taken up.'))
    incident.closed_at = utcnow()
    _step(session, incident, actor, "reject", S.REJECTED, reason=reason)
    _notify_reporters(session, incident, outcome=f"不予立案: {reason}")
    return incident


def dispatch(*, session: Session, incident: Incident, actor: Actor, main_department_id: int | None = None,
             assist_department_ids: list[int] | None = None) -> Incident:
    """派遣: one task for the main department and one per assisting department (routing by default)."""
    if incident.status == S.RECEIVED:
        register(session=session, incident=incident, actor=actor)
    _require(incident, "dispatch")
    decision = json.loads(incident.routing)
    main = main_department_id or decision.get("main_department_id")
    assists = assist_department_ids if assist_department_ids is not None else decision.get("assist_department_ids", [])
    if main is None:  # no rule covered the report: a person names the department
        raise InvalidInput(Msg('no responsibility rule names a department for incident {code}', code=incident.code),
                           fix=Msg('Choose the main department (main_department_id); an admin adds a rule with '
                                   'POST /api/v1/ops/rules for the reports to come.'))
    if main_department_id is not None or assist_department_ids is not None:  # a person chose: check the ids
        for d in [main, *assists]:
            registry.get_department_by_id(session=session, department_id=d)
    now = utcnow()
    if incident.dispatched_at is not None:  # a re-dispatch replaces the open tasks (a first one has none)
        for t in IncidentRepository(session).open_tasks(incident.id):
            t.status = "cancelled"
    incident.main_department_id = main
    session.add(Task(incident_id=incident.id, department_id=main, role="main", status="pending", created_at=now))
    for a in assists:
        if a != main:
            session.add(Task(incident_id=incident.id, department_id=a, role="assist", status="pending", created_at=now))
    incident.dispatched_at = now
    _step(session, incident, actor, "dispatch", S.DISPATCHED, main_department_id=main,
          assist_department_ids=json.dumps(assists))
    return incident


def tasks_of(*, session: Session, incident_id: int) -> list[Task]:
    """An incident's tasks, oldest first."""
    return IncidentRepository(session).tasks(incident_id)


def _own_task(session: Session, incident: Incident, actor: Actor, task_id: int | None) -> Task:
    task = IncidentRepository(session).open_task(incident.id, task_id=task_id, department_id=actor.department_id)
    if task is None:
        raise Conflict(Msg('incident {code} has no open task for you', code=incident.code),
                       fix=Msg('Only a department with a pending or accepted task can act on it.'))
    if "admin" not in actor.roles and actor.department_id != task.department_id and "system" not in actor.roles:
        raise Forbidden(Msg('task #{id} belongs to another department', id=task.id),
                        fix=Msg("Handlers act only on their own department's tasks."))
    return task


def accept(*, session: Session, incident: Incident, actor: Actor, task_id: int | None = None) -> Task:
    """A department accepts its task; the incident is being handled (处置)."""
    _require(incident, "accept")
    task = _own_task(session, incident, actor, task_id)
    if task.status != "pending":
        raise Conflict(Msg('task #{id} is already {status}', id=task.id, status=task.status), fix=Msg('Complete or return it instead.'))
    task.status, task.accepted_at = "accepted", utcnow()
    _step(session, incident, actor, "accept", S.HANDLING, task_id=task.id, department_id=task.department_id)
    return task


def return_task(*, session: Session, incident: Incident, actor: Actor, reason: str, task_id: int | None = None) -> Task:
    """退单: a department sends the incident back to the dispatcher with a reason."""
    _require(incident, "return")
    if not reason or not reason.strip():
        raise InvalidInput(Msg('a return needs a reason'), fix=Msg("Say why this is not your department's case."))
    task = _own_task(session, incident, actor, task_id)
    task.status, task.result = "returned", reason
    for t in IncidentRepository(session).open_tasks(incident.id):
        t.status = "cancelled"
    incident.return_count = (incident.return_count or 0) + 1
    _step(session, incident, actor, "return", S.REGISTERED, reason=reason, task_id=task.id,
          department_id=task.department_id)
    return task


def complete_task(*, session: Session, incident: Incident, actor: Actor, result: str, task_id: int | None = None) -> Task:
    """A department reports its task done. When every task is done the incident goes to 核查
    (or straight to 结案 when its category needs no verification)."""
    _require(incident, "complete")
    if not result or not result.strip():
        raise InvalidInput(Msg('a completed task needs a result'), fix=Msg('Say what was done.'))
    task = _own_task(session, incident, actor, task_id)
    if task.status == "pending":
        task.accepted_at = utcnow()
    task.status, task.result, task.done_at = "done", result, utcnow()
    open_tasks = IncidentRepository(session).count_open_tasks(incident.id)
    if open_tasks:
        _step(session, incident, actor, "complete_task", S.HANDLING, task_id=task.id, result=result)
        return task
    _step(session, incident, actor, "complete", S.VERIFYING, task_id=task.id, result=result)
    if not get_category(session=session, code=incident.category_code).needs_verification:
        close(session=session, incident=incident, actor=SYSTEM, reason=f"无需核查，处置完成即结案：{result}")
    return task


def verify(*, session: Session, incident: Incident, actor: Actor, passed: bool, note: str) -> Incident:
    """核查 by a grid inspector or dispatcher: passing closes the incident, failing sends every task back."""
    _require(incident, "verify")
    if not note or not note.strip():
        raise InvalidInput(Msg('a verification needs a note'), fix=Msg('Say what you saw on site.'))
    if passed:
        _step(session, incident, actor, "verify", S.VERIFYING, reason=note, passed=1)
        return close(session=session, incident=incident, actor=actor, reason=note)
    now = utcnow()
    for t in IncidentRepository(session).done_tasks(incident.id):
        session.add(Task(incident_id=incident.id, department_id=t.department_id, role=t.role, status="pending",
                         created_at=now))
    incident.reopen_count = (incident.reopen_count or 0) + 1
    _step(session, incident, actor, "verify_failed", S.DISPATCHED, reason=note, passed=0)
    return incident


def close(*, session: Session, incident: Incident, actor: Actor, reason: str) -> Incident:
    """结案: the clock stops and every reporter is told the outcome."""
    _require(incident, "close")
    incident.closed_at = utcnow()
    for s in IncidentRepository(session).unresolved_supervisions(incident.id):
        s.resolved_at = incident.closed_at
    _step(session, incident, actor, "close", S.CLOSED, reason=reason, on_time=int(on_time(incident) or 0))
    _notify_reporters(session, incident)
    return incident


def on_time(inc: Incident) -> bool | None:
    """Closed by its deadline (None while open or without a deadline)."""
    if inc.closed_at is None or inc.deadline_at is None:
        return None
    return as_utc(inc.closed_at) <= as_utc(inc.deadline_at)


def rate(*, session: Session, incident: Incident, actor: Actor, rating: str, comment: str | None = None) -> Incident:
    """The reporter's say after closing, once per closure: 满意 / 基本满意 / 不满意; 不满意 reopens it for
    review, and once closed again it may be rated again (once)."""
    _require(incident, "rate")
    if rating not in RATINGS:
        raise InvalidInput(Msg('unknown rating {rating!r}', rating=rating), fix=Msg('Use one of {items}.', items=' / '.join(RATINGS)))
    rated = IncidentRepository(session).last_rating_since_close(incident.id)
    if rated is not None:
        raise Conflict(Msg('incident {code} was already rated ({satisfaction}) for this closure, at {value:%Y-%m-%d %H:%M}', code=incident.code, satisfaction=incident.satisfaction, value=as_utc(rated.at).astimezone(SHANGHAI)),
                       fix=Msg('A closure is rated once; an incident reopened and closed again can be rated again.'),
                       status_now=incident.status)
    incident.satisfaction = rating
    if rating == "不满意":
        incident.reopen_count = (incident.reopen_count or 0) + 1
        incident.closed_at = None
        for r in ReporterRepository(session).of_incident(incident.id):
            r.notified_at = None
        _step(session, incident, actor, "reopen", S.REGISTERED, reason=comment or "报告人不满意，重新审核", rating=rating)
    else:
        _step(session, incident, actor, "rate", S.CLOSED, reason=comment, rating=rating)
    return incident


def suspend(*, session: Session, incident: Incident, actor: Actor, reason: str) -> Incident:
    """挂起: the deadline clock stops until resumed."""
    _require(incident, "suspend")
    if not reason or not reason.strip():
        raise InvalidInput(Msg('suspending needs a reason'), fix=Msg('Say what the incident is waiting for.'))
    incident.suspended_at = utcnow()
    _step(session, incident, actor, "suspend", incident.status, reason=reason)
    return incident


def resume(*, session: Session, incident: Incident, actor: Actor) -> Incident:
    """The clock runs again; deadline and warning are pushed back by the time suspended."""
    if incident.suspended_at is None:
        raise Conflict(Msg('incident {code} is not suspended', code=incident.code), fix=Msg('Only a suspended incident can be resumed.'))
    now = utcnow()
    if incident.deadline_at is not None:
        kw = {"mode": incident.deadline_mode, "paused_from": incident.suspended_at, "paused_to": now}
        incident.deadline_at = deadlines.shift(incident.deadline_at, **kw)
        incident.warn_at = deadlines.shift(incident.warn_at, **kw)
    paused = incident.suspended_at
    incident.suspended_at = None
    _step(session, incident, actor, "resume", incident.status, suspended_since=as_utc(paused).isoformat())
    return incident


def request_extension(*, session: Session, incident: Incident, actor: Actor, days: int, reason: str) -> Incident:
    """延期 requested by the handling department (approved or refused by a dispatcher)."""
    _require(incident, "extension")
    _own_task(session, incident, actor, None)
    if not 1 <= days <= 30:
        raise InvalidInput(Msg('an extension is 1 to 30 days'), fix=Msg('Ask for the days you need, at most 30.'))
    if not reason or not reason.strip():
        raise InvalidInput(Msg('an extension needs a reason'), fix=Msg('Say why more time is needed.'))
    if incident.extension_days:
        raise Conflict(Msg('incident {code} already has an extension request pending', code=incident.code),
                       fix=Msg("Wait for the dispatcher's decision."))
    incident.extension_days, incident.extension_reason = days, reason
    _step(session, incident, actor, "extension_requested", incident.status, reason=reason, days=days)
    return incident


def decide_extension(*, session: Session, incident: Incident, actor: Actor, approve: bool, note: str | None = None) -> Incident:
    """Approve (deadline moves) or refuse a pending extension request."""
    if not incident.extension_days:
        raise Conflict(Msg('incident {code} has no extension request', code=incident.code), fix=Msg('Nothing to decide.'))
    days = incident.extension_days
    if approve and incident.deadline_at is not None:
        incident.deadline_at = deadlines.extend(incident.deadline_at, mode=incident.deadline_mode, days=days)
        incident.warn_at = deadlines.extend(incident.warn_at, mode=incident.deadline_mode, days=days)
    incident.extension_days, incident.extension_reason = None, None
    _step(session, incident, actor, "extension_approved" if approve else "extension_refused", incident.status,
          reason=note, days=days, deadline_at=incident.deadline_at.isoformat() if incident.deadline_at else None)
    return incident


def first_contact(*, session: Session, incident: Incident, actor: Actor, note: str) -> Incident:
    """先行联系: a department with a task on the incident (or a dispatcher) has called the reporter;
    Forbidden for any other department, so nobody raises another department's 先行联系率."""
    _require(incident, "first-contact")
    if not actor.roles & {"admin", "dispatcher", "system"}:
        if actor.department_id is None or not IncidentRepository(session).department_has_task(
                incident.id, actor.department_id):
            raise Forbidden(Msg('incident {code} has no task for your department', code=incident.code),
                            fix=Msg('Only a department with a task on the incident, or a dispatcher, records 先行联系.'))
    if incident.first_contact_at is None:
        incident.first_contact_at = utcnow()
    _step(session, incident, actor, "first_contact", incident.status, reason=note)
    return incident


def alarm_cleared(*, session: Session, incident: Incident, actor: Actor, note: str, **data: Any) -> TimelineEntry:
    """物联感知告警解除: the IoT alarm that made (or joined) the incident cleared. A fact for whoever handles it,
    noted on the timeline and published like every step, in any state (closed or suspended too: the note
    takes nothing from the workflow); the state stays as it is."""
    return _step(session, incident, actor, "alarm_cleared", incident.status, reason=note[:500], **data)


def merge(*, session: Session, incident: Incident, into: Incident, actor: Actor, reason: str) -> Incident:
    """Fold ``incident`` into ``into``: its reporters are told the outcome of ``into``; repeats are counted."""
    if incident.id == into.id:
        raise InvalidInput(Msg('an incident cannot be merged into itself'), fix=Msg('Choose another incident.'))
    _require(incident, "merge")
    if into.status in (S.REJECTED, S.MERGED):
        raise Conflict(Msg('incident {code} is {status}; merge into an open or closed one', code=into.code, status=into.status),
                       fix=Msg('Choose the incident that is being handled.'))
    incident.parent_id = into.id
    for r in ReporterRepository(session).of_incident(incident.id):
        r.incident_id = into.id
    into.repeat_count = (into.repeat_count or 0) + 1
    _step(session, incident, actor, "merge", S.MERGED, reason=reason, into=into.code)
    outbox.queue(session, "citybase.ops.incident.repeat", {"incident_id": into.id, "code": into.code,
                                                               "repeat_count": into.repeat_count,
                                                               "merged_id": incident.id})
    session.add(TimelineEntry(incident_id=into.id, at=utcnow(), actor=actor.name, action="absorb",
                              from_status=into.status, to_status=into.status, reason=reason,
                              data=json.dumps({"merged": incident.code}, ensure_ascii=False)))
    if into.status == S.CLOSED:
        _notify_reporters(session, into)
    return incident


def supervise_overdue(*, session: Session, now: datetime | None = None, limit: int = 1000) -> list[Supervision]:
    """督办: raise one supervision for each open, unsuspended incident past its deadline, addressed to the
    main department's supervisor; each also becomes a bus event. Never commits.

    Safe when several processes sweep at once: on PostgreSQL each takes its candidates with
    ``FOR UPDATE SKIP LOCKED`` (so they share the work out); on both engines only the sweep whose
    compare-and-set ``UPDATE … WHERE supervised_at IS NULL`` matched the row raises the supervision,
    and a unique key on (incident, missed deadline) refuses a second one."""
    now = now or utcnow()
    out = []
    for iid, code, status, dept, deadline in IncidentRepository(session).take_overdue(now, limit=limit):
        s = Supervision(incident_id=iid, department_id=dept, deadline_at=deadline, created_at=now,
                        reason=f"超期未办结：期限 {as_utc(deadline).astimezone(SHANGHAI):%Y-%m-%d %H:%M}")
        session.add(s)
        out.append(s)
        session.add(TimelineEntry(incident_id=iid, at=now, actor="system", action="supervise",
                                  from_status=status, to_status=status, reason=s.reason, data="{}"))
        outbox.queue(session, "citybase.ops.incident.supervised", {
            "incident_id": iid, "code": code, "department_id": dept, "deadline_at": as_utc(deadline).isoformat()})
    session.flush()
    return out


def timeline(*, session: Session, incident_id: int) -> list[TimelineEntry]:
    """An incident's timeline, oldest first."""
    return IncidentRepository(session).timeline(incident_id)


# ---------------------------------------------------------------- reads for the API and the demo


def list_incidents(*, session: Session, statuses: list[str] | None = None, department_id: int | None = None,
                   street_id: int | None = None, grid_id: int | None = None, street_code: str | None = None,
                   category_code: str | None = None, channel: str | None = None, q: str | None = None, page: int = 1,
                   page_size: int = 50, sees_text_of: Callable[[int | None], bool] | None = None,
                   ) -> tuple[list[Incident], int]:
    """One page of incidents, red (past deadline) first, then yellow, then the rest, each by nearest
    deadline; and the total. InvalidInput for a status the workflow does not have. With ``sees_text_of``
    the text search ``q`` matches the descriptions as that reader sees them (masked or in full)."""
    if q is not None and not [x for x in q.split("*") if x]:
        raise InvalidInput(Msg("q has nothing to search for but '*'"), fix=Msg('Search for words or an incident code.'))
    if statuses:
        unknown = set(statuses) - set(OPEN) - set(TERMINAL)
        if unknown:
            raise InvalidInput(Msg('unknown status {items}', items=', '.join(sorted(unknown))),
                               fix=Msg('Use {items}.', items=', '.join(OPEN + TERMINAL)))
    equal = [("main_department_id", department_id), ("street_id", street_id), ("grid_id", grid_id),
             ("category_code", category_code), ("channel", channel)]
    if street_code:
        equal.append(("street_id", geo.get_area(session=session, code=street_code).id))
    return IncidentRepository(session).listing(statuses=statuses, equal=equal, text=q, now=utcnow(), page=page,
                                               page_size=page_size, sees_text_of=sees_text_of)


def incidents_by_id(*, session: Session, ids: set[int]) -> dict[int, Incident]:
    """The incidents with these ids, by id."""
    return {i.id: i for i in IncidentRepository(session).incidents(ids)}


def incidents_after(*, session: Session, after_id: int = 0, limit: int = 1000) -> list[Incident]:
    """Up to ``limit`` incidents with an id above ``after_id``, by id: a walk over every incident whose pages
    do not shift while incidents change (for projections such as the twin's)."""
    return IncidentRepository(session).incidents_after(after_id, limit)


def department_tasks(*, session: Session, department_id: int, statuses: list[str]) -> list[Task]:
    """A department's tasks in these task states (at most 500), oldest first."""
    return IncidentRepository(session).department_tasks(department_id, statuses)


def reported_by(*, session: Session, user_id: int | None) -> list[Incident]:
    """The incidents a person reported (at most 200), newest first."""
    return IncidentRepository(session).reported_by(user_id)


def open_supervisions(*, session: Session, department_id: int | None = None) -> list[Supervision]:
    """Unresolved supervisions (督办), newest first, at most 500."""
    return IncidentRepository(session).open_supervisions(department_id=department_id)


def waiting_work(*, session: Session, limit: int = 40) -> list[tuple[int, str]]:
    """(id, status) of open, unsuspended incidents, the longest-waiting first."""
    return IncidentRepository(session).waiting(limit=limit)


def unrated_closed(*, session: Session, limit: int = 5) -> list[int]:
    """Ids of closed incidents their reporter has not rated."""
    return IncidentRepository(session).unrated_closed(limit=limit)


def next_open_task(*, session: Session, incident_id: int) -> Task | None:
    """The oldest pending or accepted task of an incident."""
    return IncidentRepository(session).open_task(incident_id)
