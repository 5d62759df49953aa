"""What the entity subscriptions and the subscriptions to registrations (``twin.sources``) share once a
notification is queued: sending it (``notifier.send``, HTTP or MQTT) and counting the attempt in the delivery
record of its subscription (``models.DeliveryRecord``), the record as the API shows it, and the periodic
schedule (which subscriptions are due, each period taken by one run only). Every function takes the table it
works on, so that both kinds of subscription behave the same and neither has a copy of this."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from citybase.storage.db import is_postgres
from citybase.twin.representation import iso
from citybase.twin.subscriptions import events, payload
from citybase.twin.subscriptions.notifier import Sent

log = logging.getLogger("citybase.twin.subscriptions")


def _pk(model: Any) -> Any:
    return model.__mapper__.primary_key[0]


def record(session: Session, model: Any, pk: int, now: datetime, *, ok: bool, error: str | None) -> None:
    """Count one delivery attempt in the subscription's record (an increment UPDATE: processes sharing the
    deliveries never lose a count)."""
    values: dict[str, Any] = {"times_sent": model.times_sent + 1, "last_notification": now,
                              "last_status": "ok" if ok else "failed"}
    if ok:
        values["last_success"] = now
    else:
        values.update(times_failed=model.times_failed + 1, last_failure=now, last_error=(error or "")[:500])
    session.execute(update(model).where(_pk(model) == pk).values(**values)
                    .execution_options(synchronize_session=False))


def shown_record(row: Any, now: datetime) -> dict[str, Any]:
    """The status and delivery record of a subscription row, as ``payload.render`` shows them."""
    return {"jsonldContext": row.context, "status": payload.status(row.active, row.expires_at, now),
            "timesSent": row.times_sent or 0, "timesFailed": row.times_failed or 0, "lastStatus": row.last_status,
            "lastNotification": row.last_notification, "lastSuccess": row.last_success,
            "lastFailure": row.last_failure, "createdAt": row.created_at, "modifiedAt": row.modified_at}


@dataclass(frozen=True)
class Delivery:
    """What one attempt did: whether it is settled (delivered, given up, or nothing left to deliver)."""

    settled: bool
    sent: Sent | None = None


def send_and_record(*, session: Session, model: Any, row: Any, n: events.NotificationQueued, kind: str,
                    attempt: int, max_attempts: int, send: Callable[..., Sent],
                    now: Callable[[], datetime]) -> Delivery:
    """Send the queued notification ``n`` of subscription ``row`` (a row of ``model``) as a notification of
    type ``kind`` and count the attempt. Not settled when it failed and attempts are left: the caller commits
    the record and asks for a redelivery later."""
    body: dict[str, Any] = {"id": n.notification_id, "type": kind, "subscriptionId": n.subscription_id,
                            "notifiedAt": iso(now()), "data": n.data}
    if n.trigger_reason:
        body["triggerReason"] = n.trigger_reason
    endpoint = row.spec["notification"]["endpoint"]
    sent = send(endpoint, body, context=n.context, tenant=n.tenant)
    record(session, model, getattr(row, _pk(model).key), now(), ok=sent.ok, error=sent.error)
    if not sent.ok:
        log.warning("%s %s of subscription %s to %s failed (attempt %d of %d): %s", kind, n.notification_id,
                    n.subscription_id, endpoint["uri"], attempt, max_attempts, sent.error)
    return Delivery(sent.ok or attempt >= max_attempts, sent)


def due(session: Session, model: Any, now: datetime, limit: int) -> list[Any]:
    """Active periodic subscriptions whose next notification is due, not expired, oldest due first
    (``FOR UPDATE SKIP LOCKED`` on PostgreSQL)."""
    q = (select(model)
         .where(model.next_at <= now, model.time_interval.is_not(None), model.active.is_(True),
                or_(model.expires_at.is_(None), model.expires_at > now))
         .order_by(model.next_at).limit(limit))
    return list(session.scalars(q.with_for_update(skip_locked=True) if is_postgres(session) else q))


def reschedule(session: Session, model: Any, pk: int, due_at: datetime | None, then: datetime) -> bool:
    """Move a periodic subscription's next notification from ``due_at`` to ``then`` (compare-and-set: a timer
    that lost its lease mid-run and its successor never notify the same period twice)."""
    q = (update(model).where(_pk(model) == pk, model.next_at == due_at)
         .values(next_at=then).execution_options(synchronize_session=False))
    return (session.execute(q).rowcount or 0) == 1
