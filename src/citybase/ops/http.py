"""What every HTTP router of ops shares: the actor of a principal, the request's context, commit and
publish at the end of a request, who sees a reporter's contact (and its audit), names beside ids."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from citybase.bus import Context
from citybase.geo import service as geo
from citybase.ops.workflow.models import Incident
from citybase.ops.workflow.schemas import Names
from citybase.ops.workflow.service import Actor
from citybase.registry import service as registry
from citybase.security import audit
from citybase.security.deps import request_id
from citybase.security.service import Principal

CONTACT_ROLES = frozenset({"dispatcher", "handler"})  # they call reporters back (先行联系, 回访)


def actor_of(p: Principal) -> Actor:
    """The workflow actor a signed-in principal acts as."""
    return Actor(name=p.actor, user_id=p.user_id, roles=p.roles, department_id=p.department_id)


def _ctx(request: Request, p: Principal) -> Context:
    return Context(id=request_id(request), user_id=str(p.user_id) if p.user_id else None)


def _done(request: Request, session: Session, p: Principal) -> None:
    session.commit()  # the step's events are in the outbox (context from get_session); the relay publishes them


def _sees_contact(p: Principal, inc: Incident) -> bool:
    return _sees_contact_of(p, inc.main_department_id)


def _sees_contact_of(p: Principal, main_department_id: int | None) -> bool:
    """Dispatchers and the handling department call reporters back: they see contacts and texts in full."""
    if "dispatcher" in p.roles:
        return True
    return "handler" in p.roles and p.department_id is not None and p.department_id == main_department_id


def _audit_contact(request: Request, p: Principal, ids: list[int]) -> None:
    if ids:
        audit.record(request.app.state.engine, actor=p.actor, roles=",".join(sorted(p.roles)),
                     action="read.incident_reporter.unmasked", subject_type="incident", subject_ids=ids,
                     fields=["reporter_name", "reporter_phone", "free_text"], request_id=request_id(request))


def _names(session: Session) -> Names:
    return Names(areas=geo.areas_by_id(session=session),
                 departments={d.id: d.name for d in registry.list_departments(session=session)})


def _classifier(request: Request) -> Any:
    return getattr(request.app.state, "classifier", None)
