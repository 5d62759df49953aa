"""What the twin's descriptor (``twin/domain.py``) takes from the subscriptions: the routers to mount at the
root (before the twin's own router, whose last route answers every other /ngsi-ld/v1 path), the tables, the
events, the two durable consumers, the periodic timer and the index cache to drop.

* ``twin-subscriptions`` follows ``citybase.twin.entity_changed`` and queues one notification per subscription
  the change fires (``service.match_change``);
* ``twin-notify`` follows ``citybase.twin.notification`` and sends each (``service.deliver``): a failed attempt
  is counted, then retried with back-off (1, 2, 4 … s) until the bus's ``max_deliver``, where it is counted
  as given up;
* ``twin-subscriptions-periodic`` notifies the periodic subscriptions (timeInterval) that are due, each second,
  in the lease holder.

Both consumers are durable and idempotent on the event id, so any number of processes share the work and a
restart loses nothing; this module imports no router or service until they run (the descriptor stays light)."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

from citybase.kernel.consumers import Reject, exponential
from citybase.kernel.domain import ConsumerSpec, TimerSpec
from citybase.twin.events import ENTITY_CHANGED
from citybase.twin.subscriptions.events import EVENTS, NOTIFICATION

__all__ = ["CACHES", "CONSUMERS", "EVENTS", "MODELS", "TIMERS", "forget_index", "routers"]

MODELS = ("citybase.twin.subscriptions.models",)
CACHE = "twin.subscriptions"  # the name service.CACHE announces
_lock = threading.Lock()


def routers() -> list[Any]:
    """The subscription API's routers, to mount at the root before ``twin.router.router``."""
    from citybase.twin.subscriptions.router import router

    return [router]


def contexts(runtime: Any) -> Any:
    """The process's @context store (the one the twin's requests use, made from the runtime's sessions in a
    worker that serves none)."""
    from citybase.twin.router import contexts_of

    state = runtime.state
    if getattr(state, "sessions", None) is None:
        state.sessions = runtime.sessions
    return contexts_of(SimpleNamespace(app=SimpleNamespace(state=state)))


def index_cache(runtime: Any) -> Any:
    """The process's matching indexes (one per tenant), made on first use."""
    from citybase.twin.subscriptions.matching import IndexCache

    cache = getattr(runtime.state, "twin_subscription_index", None)
    if cache is None:
        with _lock:
            cache = getattr(runtime.state, "twin_subscription_index", None)
            if cache is None:
                cache = runtime.state.twin_subscription_index = IndexCache()
    return cache


def forget_index(runtime: Any) -> None:
    """Drop this process's matching indexes (a subscription changed somewhere); rebuilt on next use."""
    cache = getattr(runtime.state, "twin_subscription_index", None)
    if cache is not None:
        cache.forget()


def match(session: Any, delivery: Any, runtime: Any) -> None:
    """twin-subscriptions: the notifications an entity change fires, queued in this transaction."""
    from pydantic import ValidationError

    from citybase.twin.subscriptions import service

    try:
        service.match_change(session=session, change=delivery.event.data, cache=index_cache(runtime),
                             contexts=contexts(runtime))
    except ValidationError as exc:
        raise Reject(f"not an entity_changed event: {str(exc)[:300]}") from None


def never_subscribed(session: Any, event: Any, runtime: Any) -> bool:
    """twin-subscriptions skips (acks after one read, writes nothing) the changes of a tenant that never had a
    subscription: the bulk of a twin's changes when nobody subscribes."""
    from citybase.twin.subscriptions import service

    return service.never_subscribed(session=session, change=event.data)


class DeliveryFailed(Exception):
    """A notification attempt failed and more are left: the delivery comes back after the back-off."""


def send(session: Any, delivery: Any, runtime: Any, deliver: Any, what: str = "notification") -> None:
    """One notification sent by ``deliver`` (the entity or the registration subscriptions' service), its attempt
    counted in the subscription's record; a failed attempt with more left comes back after the back-off."""
    from pydantic import ValidationError

    from citybase.twin.subscriptions import notifier

    try:
        out = deliver(session=session, data=delivery.event.data, attempt=delivery.attempt,
                      max_attempts=runtime.bus.max_deliver, send=notifier.send)
    except ValidationError as exc:
        raise Reject(f"not a notification: {str(exc)[:300]}") from None
    if not out.settled:
        session.commit()  # keep the count of this attempt, then ask for the retry
        raise DeliveryFailed(f"{what} {delivery.event.data.get('notification_id')} failed "
                             f"(attempt {delivery.attempt}): {out.sent.error if out.sent else ''}")


def queue_periodic(runtime: Any, notify_periodic: Any) -> None:
    """The due periodic notifications of ``notify_periodic`` (either kind of subscription), in one transaction."""
    from citybase.bus import Context
    from citybase.kernel import outbox

    with runtime.sessions() as session:
        outbox.bind_context(session, Context(user_id=None))
        notify_periodic(session=session, contexts=contexts(runtime))
        session.commit()


def deliver(session: Any, delivery: Any, runtime: Any) -> None:
    """twin-notify: one notification sent, its attempt counted in the subscription's record."""
    from citybase.twin.subscriptions import service

    send(session, delivery, runtime, service.deliver)


def periodic(runtime: Any) -> None:
    """twin-subscriptions-periodic: the due periodic notifications, queued in one transaction."""
    from citybase.twin.subscriptions import service

    queue_periodic(runtime, service.notify_periodic)


CONSUMERS = (
    ConsumerSpec("twin-subscriptions", ENTITY_CHANGED, match, skip=never_subscribed),
    ConsumerSpec("twin-notify", NOTIFICATION, deliver, ack_wait=60.0, retry_delay=exponential(1.0, 60.0)),
)
TIMERS = (TimerSpec("twin-subscriptions-periodic", 1.0, periodic),)
CACHES = {CACHE: forget_index}
