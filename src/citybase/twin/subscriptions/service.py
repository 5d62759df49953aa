"""NGSI-LD subscriptions (CIM 009 v1.8 §5.8) and their notifications (§5.11): plain functions on a session that
never commit.

A change of a subscription bumps its tenant's revision and announces the ``twin.subscriptions`` cache drop in
its transaction. An entity change is matched (:func:`match_change`, run by the durable consumer of
``citybase.twin.entity_changed``) against the process's index of the tenant, checked against that revision
first, and queues one ``citybase.twin.notification`` per subscription it fires, through the outbox; each is
then delivered (:func:`deliver`, a second durable consumer) and counted in the subscription's record.
Periodic subscriptions (timeInterval) are notified by :func:`notify_periodic`, run by a leased timer."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from citybase.kernel import outbox
from citybase.kernel.runtime import invalidate
from citybase.twin import query as ql
from citybase.twin import service as twin
from citybase.twin.errors import AlreadyExists, BadRequestData, NonexistentTenant, ResourceNotFound
from citybase.twin.events import EntityChanged
from citybase.twin.ldcontext import CORE_URL, CORE_URLS, ContextStore, Resolver
from citybase.twin.repository import TwinRepository
from citybase.twin.representation import check_uri
from citybase.twin.settings import twin_settings
from citybase.twin.subscriptions import delivery, events, payload
from citybase.twin.subscriptions.delivery import Delivery, send_and_record
from citybase.twin.subscriptions.matching import (
    Compiled,
    IndexCache,
    TenantIndex,
    classify,
    compile_subscription,
    joined,
    selects,
    shown_entity,
    trigger_of,
    unquoted,
    with_lost_instances,
)
from citybase.twin.subscriptions.models import TwinSubscription
from citybase.twin.subscriptions.notifier import Sent
from citybase.twin.subscriptions.repository import SubscriptionRepository

log = logging.getLogger("citybase.twin.subscriptions")
CACHE = "twin.subscriptions"  # the cache name announced by every change of a subscription
PREFIX = "/ngsi-ld/v1"
PERIODIC_BATCH = 200  # periodic subscriptions notified per timer run at most (the rest at the next)


def _tenant(session: Session, call: twin.Call, *, write: bool) -> None:
    """The tenant of the call, as the entities treat it: created by a write, NonexistentTenant for a read."""
    repo = TwinRepository(session)
    if write:
        repo.ensure_tenant(call.tenant, call.at)
    elif not repo.tenant_exists(call.tenant):
        raise NonexistentTenant(f"there is no tenant {call.tenant!r}; a tenant is created by its first write")


def _existing(repo: SubscriptionRepository, call: twin.Call, sub_id: str, *, lock: bool) -> TwinSubscription:
    check_uri(sub_id, "the subscription id")
    row = repo.lock(call.tenant, sub_id) if lock else repo.get(call.tenant, sub_id)
    if row is None:
        raise ResourceNotFound(f"there is no subscription {sub_id}" + (f" in tenant {call.tenant!r}" if call.tenant else ""))
    return row


def _context_url(session: Session, ctx: Any, base_url: str, now: datetime) -> str:
    """The URL of a request's @context for notifications: the core context, the URL sent, or (an inline
    context) the same document kept here as ``ImplicitlyCreated`` (one per distinct document)."""
    if ctx is None:
        return CORE_URL
    if isinstance(ctx, str):
        return ctx
    if isinstance(ctx, list) and len(ctx) == 1 and isinstance(ctx[0], str):
        return ctx[0]
    cid = hashlib.sha256(json.dumps(ctx, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]
    repo = TwinRepository(session)
    row = repo.context(cid)
    if row is not None:
        return row.url
    url = f"{base_url.rstrip('/')}{PREFIX}/jsonldContexts/{cid}"
    repo.add_context(url, "ImplicitlyCreated", {"@context": ctx}, now, cid)
    return url


def _jsonld_context(session: Session, call: twin.Call, body: dict[str, Any], contexts: ContextStore,
                    base_url: str) -> str:
    if "jsonldContext" not in body:
        return _context_url(session, call.resolver.context, base_url, call.at)
    url = check_uri(body["jsonldContext"], "jsonldContext")
    contexts.resolver(url)  # refused now (LdContextNotAvailable, BadRequestData) rather than at each notification
    return url


def _schedule(row: TwinSubscription, spec: dict[str, Any], now: datetime) -> None:
    """The columns matching reads without the spec."""
    row.active = spec["isActive"]
    row.expires_at = payload.expires_at(spec)
    row.throttling = spec.get("throttling")
    interval = spec.get("timeInterval")
    if interval != row.time_interval or (interval and row.next_at is None):
        row.next_at = now if interval else None  # a periodic subscription notifies at once, then every interval
    row.time_interval = interval


def _changed(session: Session, repo: SubscriptionRepository, tenant: str) -> None:
    repo.bump(tenant)
    invalidate(session, CACHE)


def create_subscription(*, session: Session, call: twin.Call, body: Any, contexts: ContextStore,
                        base_url: str) -> str:
    """Create a subscription (AlreadyExists when its id is taken in the tenant); returns its id."""
    spec = payload.expand(body, call.resolver, call.at)
    spec.setdefault("id", f"urn:ngsi-ld:Subscription:{uuid.uuid4()}")
    repo = SubscriptionRepository(session)
    _changed(session, repo, call.tenant)  # first: on SQLite this write takes the writer lock
    _tenant(session, call, write=True)
    if repo.get(call.tenant, spec["id"]) is not None:
        raise AlreadyExists(f"a subscription {spec['id']} already exists", subscriptionId=spec["id"])
    row = TwinSubscription(tenant=call.tenant, sub_id=spec["id"], spec=spec,
                           context=_jsonld_context(session, call, body, contexts, base_url), times_sent=0,
                           times_failed=0, created_at=call.at, modified_at=call.at)
    _schedule(row, spec, call.at)
    repo.add(row)
    return spec["id"]


def _record(row: TwinSubscription, now: datetime) -> dict[str, Any]:
    return delivery.shown_record(row, now)


def get_subscription(*, session: Session, call: twin.Call, sub_id: str, sys_attrs: bool = False) -> dict[str, Any]:
    """A subscription in the caller's @context, with its status and delivery record."""
    _tenant(session, call, write=False)
    row = _existing(SubscriptionRepository(session), call, sub_id, lock=False)
    return payload.render(row.spec, _record(row, call.at), call.resolver, sys_attrs=sys_attrs)


def list_subscriptions(*, session: Session, call: twin.Call, limit: int, offset: int, count: bool,
                       sys_attrs: bool = False) -> tuple[list[dict[str, Any]], int | None]:
    """The tenant's subscriptions in creation order, a page of them, and their number when asked."""
    _tenant(session, call, write=False)
    repo = SubscriptionRepository(session)
    rows = repo.page(call.tenant, limit, offset)
    shown = [payload.render(r.spec, _record(r, call.at), call.resolver, sys_attrs=sys_attrs) for r in rows]
    return shown, repo.count(call.tenant) if count else None


def update_subscription(*, session: Session, call: twin.Call, sub_id: str, body: Any, contexts: ContextStore,
                        base_url: str) -> None:
    """PATCH a subscription: the members given replace the stored ones (``notification``'s one by one,
    ``null`` removes an optional member); the result is checked as a whole."""
    if not isinstance(body, dict) or not set(body) - {"@context"}:
        raise BadRequestData("the body must be a JSON object with the Subscription members to change")
    _tenant(session, call, write=False)
    check_uri(sub_id, "the subscription id")
    repo = SubscriptionRepository(session)
    _changed(session, repo, call.tenant)
    row = _existing(repo, call, sub_id, lock=True)
    spec = payload.expand(body, call.resolver, call.at, old=row.spec)
    row.spec = spec
    if "jsonldContext" in body:
        row.context = _jsonld_context(session, call, body, contexts, base_url)
    _schedule(row, spec, call.at)
    row.modified_at = call.at
    session.flush()


def delete_subscription(*, session: Session, call: twin.Call, sub_id: str) -> None:
    _tenant(session, call, write=False)
    check_uri(sub_id, "the subscription id")
    repo = SubscriptionRepository(session)
    _changed(session, repo, call.tenant)
    repo.remove(_existing(repo, call, sub_id, lock=True))


# ------------------------------------------------------------------------------------------ matching


def _resolver(contexts: ContextStore, ctx: Any) -> Resolver:
    return contexts.resolver(None if isinstance(ctx, str) and ctx in CORE_URLS else ctx)


def _index(session: Session, repo: SubscriptionRepository, tenant: str, revision: int,
           contexts: ContextStore) -> TenantIndex:
    subs: list[Compiled] = []
    for pk, spec, active, expires, throttling in repo.matching_rows(tenant):
        try:
            subs.append(compile_subscription(pk, spec, active=active, throttling=throttling,
                                             expires_at=_utc(expires), resolve=lambda c: _resolver(contexts, c)))
        except Exception:  # noqa: BLE001 - one subscription that no longer compiles (its @context gone) stays out
            log.exception("subscription %s of tenant %r cannot be matched; left out of the index", spec.get("id"), tenant)
    return TenantIndex.of(revision, subs)


def _utc(t: datetime | None) -> datetime | None:
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


def index_of(*, session: Session, tenant: str, cache: IndexCache, contexts: ContextStore) -> TenantIndex:
    """The tenant's matching index, rebuilt when its subscriptions changed since it was built."""
    repo = SubscriptionRepository(session)
    revision = repo.revision(tenant)
    return cache.get(tenant, revision, lambda: _index(session, repo, tenant, revision, contexts))


def _queue(session: Session, row: TwinSubscription, data: list[dict[str, Any]], reason: str | None) -> None:
    outbox.queue(session, events.NOTIFICATION, events.NotificationQueued(
        tenant=row.tenant, subscription_id=row.sub_id, notification_id=f"urn:ngsi-ld:Notification:{uuid.uuid4()}",
        trigger_reason=reason, context=row.context, data=data).model_dump())


def never_subscribed(*, session: Session, change: Any) -> bool:
    """Whether the tenant of this ``entity_changed`` event never had a subscription (a read, no write): such
    a change fires nothing. Anything malformed answers False, so that :func:`match_change` rejects it."""
    tenant = change.get("tenant") if isinstance(change, dict) else None
    if not isinstance(tenant, str):
        return False
    seen = session.info.setdefault(_NEVER_SUBSCRIBED, {})  # the consumer's read session of one fetched batch:
    got = seen.get(tenant)  # one read per tenant for the batch (its events were all committed before it)
    if got is None:
        got = seen[tenant] = SubscriptionRepository(session).revision(tenant) == 0
    return got


_NEVER_SUBSCRIBED = "citybase.twin.never_subscribed"  # session.info key: tenant -> never had a subscription


def _fetch(session: Session, tenant: str, r: Resolver, now: datetime) -> Callable[[list[str]], dict[str, Any]]:
    """The entities of the tenant by id, for the linked entities of a notification (notification.join)."""
    call = twin.Call(tenant=tenant, resolver=r, at=now)
    return lambda ids: twin.get_entities(session=session, call=call, ids=ids)


def _at(ev: EntityChanged) -> datetime:
    return datetime.fromisoformat(ev.modified_at.replace("Z", "+00:00"))


def match_change(*, session: Session, change: dict[str, Any], cache: IndexCache, contexts: ContextStore,
                 now: datetime | None = None) -> int:
    """Queue a notification for every live subscription of the tenant that this ``entity_changed`` event
    fires (entities, watchedAttributes, notificationTrigger, q, scopeQ, geoQ, expiry, throttling); returns how
    many were queued. Raises ValueError for an event that is not an EntityChanged."""
    ev = EntityChanged.model_validate(change)
    now = now or datetime.now(UTC)
    repo = SubscriptionRepository(session)
    if repo.revision(ev.tenant) == 0:
        return 0  # the tenant never had a subscription: no index, no entity read
    idx = index_of(session=session, tenant=ev.tenant, cache=cache, contexts=contexts)
    candidates = [s for s in idx.candidates(ev.id, ev.types, ev.attrs) if s.live(now)]
    if not candidates:
        return 0
    if ev.op == "delete":
        doc: dict[str, Any] | None = {"id": ev.id, "type": ev.types, "attrs": {}}
    else:
        entity = TwinRepository(session).get(ev.tenant, ev.id)
        if entity is None:
            return 0  # deleted since: its deletion is matched on its own event
        doc = twin.doc_of(entity)
    what = classify(ev.op, ev.attrs, doc if ev.op != "delete" else None, ev.modified_at)
    if what.updated and any("attributeDeleted" in s.triggers for s in candidates):  # some instances deleted?
        what = with_lost_instances(what, doc, repo.latest_instances(ev.tenant, ev.id, sorted(what.updated), _at(ev)))
    fired = {}
    for sub in candidates:
        reason = trigger_of(sub, what)
        if reason is not None and selects(sub, doc, deleted=ev.op == "delete"):
            fired[sub.pk] = (sub, reason)
    queued = 0
    for row in repo.by_pks(list(fired)):
        sub, reason = fired[row.pk]
        if not row.active or (sub.throttling and not repo.claim(row.pk, now, sub.throttling)):
            continue  # paused meanwhile, or throttled
        before = what.deleted | (what.updated if row.spec["notification"].get("showChanges") else frozenset())
        previous = repo.previous_instances(ev.tenant, ev.id, sorted(before), _at(ev)) if before else None
        r = _resolver(contexts, row.context)
        shown = shown_entity(row.spec, doc, what, r, previous, reason)
        _queue(session, row, joined(row.spec, doc, shown, r, _fetch(session, ev.tenant, r, now)), reason)
        queued += 1
    return queued


def notify_periodic(*, session: Session, contexts: ContextStore, now: datetime | None = None) -> int:
    """Queue the notification of every periodic subscription that is due (its entities as they are now, when
    there are any), and schedule its next one; returns how many subscriptions were handled."""
    now = now or datetime.now(UTC)
    repo = SubscriptionRepository(session)
    rows = repo.due(now, PERIODIC_BATCH)
    limit = twin_settings().max_limit
    for row in rows:
        if not repo.reschedule(row.pk, row.next_at, now + timedelta(seconds=row.time_interval or 0)):
            continue  # another run took this period
        spec = row.spec
        r = _resolver(contexts, row.context)
        call = twin.Call(tenant=row.tenant, resolver=r, at=now)
        q = spec.get("q")
        found: dict[str, dict[str, Any]] = {}
        try:
            base = twin.Query(q=ql.parse_q(unquoted(q["text"]), _resolver(contexts, q["context"]).expand) if q else None,
                              geo=payload.parse_geoq(spec["geoQ"]) if spec.get("geoQ") else None,
                              scope=ql.parse_scope_query(spec["scopeQ"]) if spec.get("scopeQ") else None, limit=limit)
            for sel in spec["entities"]:
                query = twin.Query(types=ql.parse_type_query(sel["type"], lambda name: name),
                                   ids=[sel["id"]] if sel.get("id") else None,
                                   id_pattern=None if sel.get("id") else sel.get("idPattern"),
                                   q=base.q, geo=base.geo, scope=base.scope, limit=limit)
                for doc in twin.query_entities(session=session, call=call, query=query)[0]:
                    found.setdefault(doc["id"], doc)
        except NonexistentTenant:
            found = {}
        if found:
            fetch = _fetch(session, row.tenant, r, now)
            _queue(session, row, [e for d in list(found.values())[:limit]
                                  for e in joined(spec, d, shown_entity(spec, d, None, r), r, fetch)], None)
    return len(rows)


# ------------------------------------------------------------------------------------------ delivery


def deliver(*, session: Session, data: dict[str, Any], attempt: int, max_attempts: int,
            send: Callable[..., Sent], now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Delivery:
    """Send one queued notification (``send(endpoint, notification, context=, tenant=)``) and count the
    attempt in the subscription's record. Not settled when it failed and attempts are left: the caller
    commits the record and asks for a redelivery later. Raises ValueError for data that is no notification."""
    n = events.NotificationQueued.model_validate(data)
    row = SubscriptionRepository(session).get(n.tenant, n.subscription_id)
    if row is None:
        return Delivery(True)  # the subscription was deleted meanwhile
    return send_and_record(session=session, model=TwinSubscription, row=row, n=n, kind="Notification",
                           attempt=attempt, max_attempts=max_attempts, send=send, now=now)
