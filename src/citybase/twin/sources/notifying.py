"""Notifications of the subscriptions to context source registrations (CIM 009 v1.8 §5.11.7, §5.3.2): plain
functions on a session that never commit, run the way the entity subscriptions' are.

A registration created, updated or deleted queues ``citybase.twin.registration_changed`` (with the registration
as it was before and after) in its transaction; the durable consumer ``twin-csource-subscriptions`` matches it
(:func:`match_change`) against the tenant's live, non-periodic subscriptions to registrations (entities,
watchedAttributes, q and csf over the Context Source Properties, geoQ over ``location``, temporalQ over the
observation or management interval) and queues one ``citybase.twin.csource_notification`` per subscription
whose view of it changed: ``newlyMatching`` (it matches now and did not), ``updated`` (both), or
``noLongerMatching`` (it did and does not, a deleted registration included). ``twin-csource-notify`` then
delivers each (:func:`deliver`) with the entity subscriptions' sender and delivery record
(``subscriptions.delivery``). A subscription created or changed is sent every registration it matches at once
(:func:`queue_initial`); a periodic one (timeInterval) is sent them every interval (:func:`notify_periodic`).

The data of a notification is each registration in the subscription's @context, with only its RegistrationInfo
elements that the subscription asks about (all of them for a registration that no longer matches), and the
entity types as arrays (as the stored form has them). Registrations and these subscriptions are few per tenant:
matching reads the tenant's subscriptions on each registration change, with no index."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from citybase.kernel import outbox
from citybase.twin import query as ql
from citybase.twin.errors import NgsiError
from citybase.twin.ldcontext import CORE_URLS, ContextStore, Resolver
from citybase.twin.representation import parse_time
from citybase.twin.service import Call
from citybase.twin.sources import events
from citybase.twin.sources.models import TwinSourceSubscription
from citybase.twin.sources.repository import SourceSubscriptionRepository
from citybase.twin.sources.service import (
    Discovery,
    Registered,
    _discovered,
    _item_discovered,
    _registered,
    from_snapshot,
    shown,
)
from citybase.twin.subscriptions import delivery, payload
from citybase.twin.subscriptions.events import NotificationQueued
from citybase.twin.subscriptions.matching import unquoted
from citybase.twin.subscriptions.notifier import Sent

log = logging.getLogger("citybase.twin.sources")
KIND = "ContextSourceNotification"
PERIODIC_BATCH = 200  # periodic subscriptions notified per timer run at most (the rest at the next)


def _resolver(contexts: ContextStore, ctx: Any) -> Resolver:
    return contexts.resolver(None if isinstance(ctx, str) and ctx in CORE_URLS else ctx)


def _utc(t: datetime | None) -> datetime | None:
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


def live(row: TwinSourceSubscription, now: datetime) -> bool:
    """Active and not expired: the only subscriptions notified."""
    return payload.status(row.active, _utc(row.expires_at), now) == "active"


def discoveries(spec: dict[str, Any], contexts: ContextStore) -> list[Discovery]:
    """A subscription as registration queries (one per entity selector; a registration matches when any does),
    its names IRIs already but for q and csf, read in their own @context."""
    base = Discovery(attrs=spec.get("watchedAttributes"))
    for member in ("q", "csf"):
        if spec.get(member):
            q = spec[member]
            setattr(base, member, ql.parse_q(unquoted(q["text"]), _resolver(contexts, q["context"]).expand))
    if spec.get("geoQ"):
        base.geo = payload.parse_geoq(spec["geoQ"])
    tq = spec.get("temporalQ")
    if tq:
        base.timerel, base.time_at = tq["timerel"], parse_time(tq["timeAt"], "timeAt")
        base.end_time_at = parse_time(tq["endTimeAt"], "endTimeAt") if tq.get("endTimeAt") else None
        base.timeproperty = tq.get("timeproperty", "observedAt")
    if not spec.get("entities"):
        return [base]
    return [replace(base, types=ql.parse_type_query(sel["type"], lambda name: name),
                    ids=[sel["id"]] if sel.get("id") else None,
                    id_pattern=None if sel.get("id") else sel.get("idPattern")) for sel in spec["entities"]]


def _expired(reg: Registered, now: datetime) -> bool:
    return reg.expires_at is not None and _utc(reg.expires_at) <= now  # type: ignore[operator]


def matches(reg: Registered | None, ds: list[Discovery], expand: Callable[[str], str], now: datetime) -> bool:
    return reg is not None and not _expired(reg, now) and any(_discovered(reg, d, expand) for d in ds)  # type: ignore[arg-type]


def _data(regs: list[Registered], ds: list[Discovery], r: Resolver, *, relevant: bool) -> list[dict[str, Any]]:
    """The registrations as the notification carries them: in the subscription's @context, only the
    RegistrationInfo elements the subscription matches (``relevant``), entity types as arrays."""
    out = []
    for reg in regs:
        info = reg.body["information"]
        if relevant:
            info = [item for item in info if any(_item_discovered(item, d) for d in ds)] or info
        doc = shown(replace(reg, body={**reg.body, "information": info}), Call(tenant="", resolver=r))  # type: ignore[arg-type]
        for item in doc["information"]:
            for e in item.get("entities", ()):
                e["type"] = e["type"] if isinstance(e["type"], list) else [e["type"]]
        out.append(doc)
    return out


def _queue(session: Session, row: TwinSourceSubscription, data: list[dict[str, Any]], reason: str) -> None:
    outbox.queue(session, events.CSOURCE_NOTIFICATION, NotificationQueued(
        tenant=row.tenant, subscription_id=row.sub_id, notification_id=f"urn:ngsi-ld:Notification:{uuid.uuid4()}",
        trigger_reason=reason, context=row.context, data=data).model_dump())


def never_subscribed(*, session: Session, change: Any) -> bool:
    """Whether the tenant of this ``registration_changed`` event has no subscription to registrations (a read,
    no write). Anything malformed answers False, so that :func:`match_change` rejects it."""
    tenant = change.get("tenant") if isinstance(change, dict) else None
    return isinstance(tenant, str) and SourceSubscriptionRepository(session).count(tenant) == 0


def match_change(*, session: Session, change: dict[str, Any], contexts: ContextStore,
                 now: datetime | None = None) -> int:
    """Queue a notification for every live, non-periodic subscription of the tenant whose view of this
    registration changed; returns how many were queued. Raises ValueError for what is no RegistrationChanged."""
    ev = events.RegistrationChanged.model_validate(change)
    now = now or datetime.now(UTC)
    before = from_snapshot(ev.before) if ev.before else None
    after = from_snapshot(ev.after) if ev.after else None
    queued = 0
    for row in SourceSubscriptionRepository(session).all(ev.tenant):
        if row.time_interval or not live(row, now):
            continue  # periodic ones are notified by the timer only
        r = _resolver(contexts, row.context)
        ds = discoveries(row.spec, contexts)
        was, now_matches = matches(before, ds, r.expand, now), matches(after, ds, r.expand, now)
        if now_matches:
            reason = "updated" if was else "newlyMatching"
        elif was:
            reason = "noLongerMatching"
        else:
            continue
        reg = after if after is not None else before
        assert reg is not None
        _queue(session, row, _data([reg], ds, r, relevant=now_matches), reason)
        queued += 1
    return queued


def matching_now(session: Session, row: TwinSourceSubscription, contexts: ContextStore, now: datetime,
                 resolver: Resolver | None = None) -> tuple[list[Registered], list[Discovery], Resolver]:
    r = resolver or _resolver(contexts, row.context)
    ds = discoveries(row.spec, contexts)
    return [reg for reg in _registered(session, row.tenant) if matches(reg, ds, r.expand, now)], ds, r


def queue_initial(*, session: Session, row: TwinSourceSubscription, contexts: ContextStore, now: datetime,
                  resolver: Resolver | None = None) -> bool:
    """A subscription just created or changed (not periodic: the timer sends its first at once): the
    registrations it matches now, as newlyMatching, when there are any and it is live. ``resolver``: the
    request's, when its @context is the subscription's (one kept in this transaction is not readable yet)."""
    if row.time_interval or not live(row, now):
        return False
    try:
        regs, ds, r = matching_now(session, row, contexts, now, resolver)
    except NgsiError as exc:  # its jsonldContext cannot be read now: the changes will be notified, not this
        log.warning("no initial notification of %s: %s", row.sub_id, exc.detail)
        return False
    if regs:
        _queue(session, row, _data(regs, ds, r, relevant=True), "newlyMatching")
    return bool(regs)


def notify_periodic(*, session: Session, contexts: ContextStore, now: datetime | None = None) -> int:
    """Queue the notification of every periodic subscription that is due (the registrations it matches now,
    when there are any), and schedule its next one; returns how many subscriptions were handled."""
    now = now or datetime.now(UTC)
    rows = delivery.due(session, TwinSourceSubscription, now, PERIODIC_BATCH)
    for row in rows:
        if not delivery.reschedule(session, TwinSourceSubscription, row.id, row.next_at,
                                   now + timedelta(seconds=row.time_interval or 0)):
            continue  # another run took this period
        regs, ds, r = matching_now(session, row, contexts, now)
        if regs:
            _queue(session, row, _data(regs, ds, r, relevant=True), "newlyMatching")
    return len(rows)


def deliver(*, session: Session, data: dict[str, Any], attempt: int, max_attempts: int,
            send: Callable[..., Sent],
            now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> delivery.Delivery:
    """Send one queued notification and count the attempt in the subscription's record (as the entity
    subscriptions' ``service.deliver``). Raises ValueError for data that is no notification."""
    n = NotificationQueued.model_validate(data)
    row = SourceSubscriptionRepository(session).get(n.tenant, n.subscription_id)
    if row is None:
        return delivery.Delivery(True)  # the subscription was deleted meanwhile
    return delivery.send_and_record(session=session, model=TwinSourceSubscription, row=row, n=n, kind=KIND,
                                    attempt=attempt, max_attempts=max_attempts, send=send, now=now)
