"""Subscriptions to context source registrations (CIM 009 v1.8 §5.11): created, read, listed, updated and
deleted like entity subscriptions, their payload checked and stored the same way (``twin.subscriptions.payload``).
Not yet notified: a change of a registration sends nothing (see the twin row of docs/architecture.md)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from citybase.twin.errors import AlreadyExists, BadRequestData, ResourceNotFound
from citybase.twin.ldcontext import CORE_URL
from citybase.twin.representation import check_uri
from citybase.twin.service import Call
from citybase.twin.sources.models import TwinSourceSubscription
from citybase.twin.sources.repository import SourceSubscriptionRepository
from citybase.twin.subscriptions import payload


def _context(call: Call, body: dict[str, Any]) -> str:
    if "jsonldContext" in body:
        return check_uri(body["jsonldContext"], "jsonldContext")
    ctx = call.resolver.context
    if isinstance(ctx, list) and len(ctx) == 1:
        ctx = ctx[0]
    return ctx if isinstance(ctx, str) else CORE_URL


def _existing(session: Session, call: Call, sub_id: str) -> TwinSourceSubscription:
    check_uri(sub_id, "the subscription id")
    row = SourceSubscriptionRepository(session).get(call.tenant, sub_id)
    if row is None:
        raise ResourceNotFound(f"there is no context source registration subscription {sub_id}")
    return row


def _shown(row: TwinSourceSubscription, call: Call, sys_attrs: bool) -> dict[str, Any]:
    record = {"jsonldContext": row.context, "status": payload.status(row.active, row.expires_at, call.at),
              "timesSent": 0, "timesFailed": 0, "lastStatus": None, "createdAt": row.created_at,
              "modifiedAt": row.modified_at}
    out = payload.render(row.spec, record, call.resolver, sys_attrs=sys_attrs)
    out.pop("notificationTrigger", None)  # entity triggers: nothing a registration subscription has
    if not row.spec.get("jsonldContextGiven"):
        out.pop("jsonldContext", None)
    return out


def create(*, session: Session, call: Call, body: Any) -> str:
    spec = payload.expand(body, call.resolver, call.at)
    spec.setdefault("id", f"urn:ngsi-ld:Subscription:{uuid.uuid4()}")
    if isinstance(body, dict) and "jsonldContext" in body:
        spec["jsonldContextGiven"] = True
    repo = SourceSubscriptionRepository(session)
    if repo.get(call.tenant, spec["id"]) is not None:
        raise AlreadyExists(f"a subscription {spec['id']} already exists", subscriptionId=spec["id"])
    repo.add(TwinSourceSubscription(tenant=call.tenant, sub_id=spec["id"], spec=spec, context=_context(call, body),
                                    active=spec["isActive"], expires_at=payload.expires_at(spec),
                                    created_at=call.at, modified_at=call.at))
    return spec["id"]


def get(*, session: Session, call: Call, sub_id: str, sys_attrs: bool = False) -> dict[str, Any]:
    return _shown(_existing(session, call, sub_id), call, sys_attrs)


def listed(*, session: Session, call: Call, limit: int, offset: int,
           sys_attrs: bool = False) -> tuple[list[dict[str, Any]], int]:
    repo = SourceSubscriptionRepository(session)
    return [_shown(r, call, sys_attrs) for r in repo.page(call.tenant, limit, offset)], repo.count(call.tenant)


def update(*, session: Session, call: Call, sub_id: str, body: Any) -> None:
    if not isinstance(body, dict) or not set(body) - {"@context"}:
        raise BadRequestData("the body must be a JSON object with the Subscription members to change")
    row = _existing(session, call, sub_id)
    old = {k: v for k, v in row.spec.items() if k != "notification" or "notification" not in body}
    spec = payload.expand(body, call.resolver, call.at, old=old)  # a notification given replaces the old one
    if "jsonldContext" in body:
        spec["jsonldContextGiven"] = True
    row.spec = spec
    if "jsonldContext" in body:
        row.context = _context(call, body)
    row.active, row.expires_at, row.modified_at = spec["isActive"], payload.expires_at(spec), call.at
    session.flush()


def delete(*, session: Session, call: Call, sub_id: str) -> None:
    row = _existing(session, call, sub_id)
    SourceSubscriptionRepository(session).remove(row)
