"""Subscriptions to context source registrations (CIM 009 v1.8 §5.11): created, read, listed, updated and
deleted like entity subscriptions, their payload checked and stored the same way (``twin.subscriptions.payload``),
plus the two members only they have: ``csf`` (a q over the Context Source Properties) and ``temporalQ`` (over
the registrations' observationInterval or managementInterval). Notified by ``twin.sources.notifying``: a
subscription created or changed is sent the registrations it matches at once (a periodic one by the timer)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from citybase.twin import query as ql
from citybase.twin.errors import AlreadyExists, BadRequestData, ResourceNotFound
from citybase.twin.ldcontext import ContextStore
from citybase.twin.representation import check_uri, iso, parse_time
from citybase.twin.service import Call
from citybase.twin.sources import notifying
from citybase.twin.sources.models import TwinSourceSubscription
from citybase.twin.sources.repository import SourceSubscriptionRepository
from citybase.twin.subscriptions import delivery, payload
from citybase.twin.subscriptions.service import _context_url

OWN = ("csf", "temporalQ")  # members of a subscription to registrations that entity subscriptions do not have
TIMERELS = ("before", "after", "between")
TIMEPROPERTIES = ("observedAt", "createdAt", "modifiedAt")


def _context(session: Session, call: Call, body: dict[str, Any], base_url: str) -> str:
    """The @context notifications use: jsonldContext, or the request's (an inline one kept here, as the
    entity subscriptions keep it)."""
    if "jsonldContext" in body:
        return check_uri(body["jsonldContext"], "jsonldContext")
    return _context_url(session, call.resolver.context, base_url, call.at)


def _existing(session: Session, call: Call, sub_id: str) -> TwinSourceSubscription:
    check_uri(sub_id, "the subscription id")
    row = SourceSubscriptionRepository(session).get(call.tenant, sub_id)
    if row is None:
        raise ResourceNotFound(f"there is no context source registration subscription {sub_id}")
    return row


def _csf(value: Any, call: Call) -> dict[str, Any]:
    if not isinstance(value, str) or not value.strip() or len(value) > 4096:
        raise BadRequestData("csf must be a non-empty query of at most 4096 characters")
    try:
        ql.parse_q(value, call.resolver.expand)
    except ValueError as exc:
        raise BadRequestData(f"csf: {exc}") from None
    return {"text": value, "context": call.resolver.context}


def _temporal(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) - {"timerel", "timeAt", "endTimeAt", "timeproperty"}:
        raise BadRequestData("temporalQ must be an object {timerel, timeAt, endTimeAt, timeproperty}")
    if value.get("timerel") not in TIMERELS:
        raise BadRequestData("temporalQ.timerel must be before, after or between")
    out: dict[str, Any] = {"timerel": value["timerel"]}
    if "timeAt" not in value:
        raise BadRequestData("temporalQ needs timeAt")
    out["timeAt"] = iso(parse_time(value["timeAt"], "temporalQ.timeAt"))
    if value["timerel"] == "between":
        if "endTimeAt" not in value:
            raise BadRequestData("temporalQ with timerel between needs endTimeAt")
        end = parse_time(value["endTimeAt"], "temporalQ.endTimeAt")
        if end <= parse_time(out["timeAt"], "timeAt"):
            raise BadRequestData("temporalQ.endTimeAt must be after its timeAt")
        out["endTimeAt"] = iso(end)
    prop = value.get("timeproperty", "observedAt")
    if prop not in TIMEPROPERTIES:
        raise BadRequestData("temporalQ.timeproperty must be observedAt, createdAt or modifiedAt")
    out["timeproperty"] = prop
    return out


def _own(body: Any, call: Call, old: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    """The body without csf and temporalQ (for ``payload.expand``), and their stored form (None: removed)."""
    if not isinstance(body, dict):
        return body, {}
    own: dict[str, Any] = {}
    if "csf" in body:
        own["csf"] = None if body["csf"] is None and old is not None else _csf(body["csf"], call)
    if "temporalQ" in body:
        own["temporalQ"] = None if body["temporalQ"] is None and old is not None else _temporal(body["temporalQ"])
    return {k: v for k, v in body.items() if k not in OWN}, own


def _with_own(spec: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    for member, value in own.items():
        if value is None:
            spec.pop(member, None)
        else:
            spec[member] = value
    return spec


def _shown(row: TwinSourceSubscription, call: Call, sys_attrs: bool) -> dict[str, Any]:
    out = payload.render(row.spec, delivery.shown_record(row, call.at), call.resolver, sys_attrs=sys_attrs)
    out.pop("notificationTrigger", None)  # entity triggers: nothing a registration subscription has
    if not row.spec.get("jsonldContextGiven"):
        out.pop("jsonldContext", None)
    if "csf" in row.spec:
        out["csf"] = row.spec["csf"]["text"]
    if "temporalQ" in row.spec:
        out["temporalQ"] = row.spec["temporalQ"]
    return out


def _schedule(row: TwinSourceSubscription, spec: dict[str, Any], now: datetime) -> None:
    row.active, row.expires_at = spec["isActive"], payload.expires_at(spec)
    interval = spec.get("timeInterval")
    if interval != row.time_interval or (interval and row.next_at is None):
        row.next_at = now if interval else None  # a periodic subscription notifies at once, then every interval
    row.time_interval = interval


def create(*, session: Session, call: Call, body: Any, contexts: ContextStore, base_url: str) -> str:
    rest, own = _own(body, call)
    spec = _with_own(payload.expand(rest, call.resolver, call.at), own)
    spec.setdefault("id", f"urn:ngsi-ld:Subscription:{uuid.uuid4()}")
    if isinstance(body, dict) and "jsonldContext" in body:
        spec["jsonldContextGiven"] = True
    repo = SourceSubscriptionRepository(session)
    if repo.get(call.tenant, spec["id"]) is not None:
        raise AlreadyExists(f"a subscription {spec['id']} already exists", subscriptionId=spec["id"])
    row = TwinSourceSubscription(tenant=call.tenant, sub_id=spec["id"], spec=spec, context=_context(session, call, body, base_url),
                                 times_sent=0, times_failed=0, created_at=call.at, modified_at=call.at)
    _schedule(row, spec, call.at)
    repo.add(row)
    notifying.queue_initial(session=session, row=row, contexts=contexts, now=call.at,
                            resolver=None if "jsonldContext" in body else call.resolver)
    return spec["id"]


def get(*, session: Session, call: Call, sub_id: str, sys_attrs: bool = False) -> dict[str, Any]:
    return _shown(_existing(session, call, sub_id), call, sys_attrs)


def listed(*, session: Session, call: Call, limit: int, offset: int,
           sys_attrs: bool = False) -> tuple[list[dict[str, Any]], int]:
    repo = SourceSubscriptionRepository(session)
    return [_shown(r, call, sys_attrs) for r in repo.page(call.tenant, limit, offset)], repo.count(call.tenant)


def update(*, session: Session, call: Call, sub_id: str, body: Any, contexts: ContextStore,
           base_url: str) -> None:
    """PATCH a subscription; then it is sent every registration it matches (§5.11.7), unless periodic."""
    if not isinstance(body, dict) or not set(body) - {"@context"}:
        raise BadRequestData("the body must be a JSON object with the Subscription members to change")
    row = _existing(session, call, sub_id)
    rest, own = _own(body, call, row.spec)
    old = {k: v for k, v in row.spec.items() if k != "notification" or "notification" not in body}
    spec = payload.expand(rest, call.resolver, call.at, old=old)  # a notification given replaces the old one
    spec = _with_own(spec, own)
    if "jsonldContext" in body:
        spec["jsonldContextGiven"] = True
    row.spec = spec
    if "jsonldContext" in body:
        row.context = _context(session, call, body, base_url)
    _schedule(row, spec, call.at)
    row.modified_at = call.at
    session.flush()
    notifying.queue_initial(session=session, row=row, contexts=contexts, now=call.at)


def delete(*, session: Session, call: Call, sub_id: str) -> None:
    row = _existing(session, call, sub_id)
    SourceSubscriptionRepository(session).remove(row)
