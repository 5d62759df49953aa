"""Background work of the incident loop, each a durable consumer on the bus or a timer:

* alarms: ``citybase.iot.alarm.*`` events become incidents (alarm type → category);
* webhooks: every ``citybase.ops.>`` event is POSTed to the subscribed department systems, with
  retries (the bus redelivers) and a delivery log;
* supervision: overdue incidents raise 督办 once a minute.

A message that cannot be handled for a reason in the message itself is rejected to the
dead-letter store with that reason; a transient failure is retried, never looped forever."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from citybase.bus import Bus, Context, Delivery, Event
from citybase.bus.base import subject_matches
from citybase.core.errors import CitybaseError
from citybase.core.timeutil import utcnow
from citybase.kernel import outbox, webhooks
from citybase.kernel.consumers import Consumer, Reject
from citybase.ops import service
from citybase.ops.catalogue import ALARM_CATEGORIES
from citybase.ops.models import Webhook, WebhookDelivery
from citybase.storage.db import make_sessionmaker

log = logging.getLogger("citybase.ops.workers")
ALARMS = "citybase.iot.alarm.>"
OPS_EVENTS = "citybase.ops.>"
IOT_ACTOR = service.Actor("iot", roles=frozenset({"system"}))


def handle_alarm(session: Session, event: Event, classifier: Any = None) -> service.IntakeResult:
    """Turn one IoT alarm into an incident (or a repeat of an open one)."""
    d = event.data
    alarm = d.get("alarm_type")
    if alarm not in ALARM_CATEGORIES:
        raise Reject(f"unknown alarm_type {alarm!r}; known: {', '.join(sorted(ALARM_CATEGORIES))}")
    try:
        lon, lat = float(d["lon"]), float(d["lat"])
    except (KeyError, TypeError, ValueError):
        raise Reject("alarm lacks numeric lon/lat") from None
    device = d.get("device_id", "unknown")
    text = d.get("description") or f"物联感知告警：设备 {device} 报告 {alarm}（读数 {d.get('value', '—')}）"
    try:
        return service.intake(session=session, channel="iot", actor=IOT_ACTOR, description=str(text)[:2000],
                              category_code=ALARM_CATEGORIES[alarm], lon=lon, lat=lat,
                              priority=d.get("priority") if d.get("priority") in ("urgent", "normal", "low") else "urgent",
                              classifier=classifier)
    except CitybaseError as exc:
        raise Reject(f"{exc.detail} ({exc.fix})" if exc.fix else exc.detail) from None


def deliver_webhooks(session: Session, event: Event, attempt: int, *, max_attempts: int,
                     post: webhooks.Post | None = None) -> bool:
    """POST the event to every matching webhook not yet served; log each try. True when all succeeded."""
    dept = event.data.get("main_department_id") or event.data.get("department_id")
    hooks = [h for h in _active_hooks(session) if subject_matches(h.events, event.subject)
             and (h.department_id is None or h.department_id == dept)]
    ok = True
    for hook in hooks:
        done = session.scalar(select(WebhookDelivery.id).where(WebhookDelivery.webhook_id == hook.id,
                                                               WebhookDelivery.event_id == event.id,
                                                               WebhookDelivery.status == "delivered"))
        if done:
            continue
        a = webhooks.deliver(hook.url, hook.secret, event, attempt=attempt, max_attempts=max_attempts, post=post)
        session.add(WebhookDelivery(webhook_id=hook.id, event_id=event.id, subject=event.subject, attempt=attempt,
                                    status=a.status, response_code=a.response_code, error=a.error, at=utcnow()))
        ok = ok and a.ok
    return ok


_hooks_cache: dict[Any, tuple[float, list[Webhook]]] = {}
HOOKS_TTL = 5.0  # seconds: a new or deactivated webhook takes effect within this time


def forget_webhooks() -> None:
    """Drop the cached webhook list (this process re-reads it on the next event)."""
    _hooks_cache.clear()


def _active_hooks(session: Session) -> list[Webhook]:
    """Active webhooks, re-read at most every few seconds (every event would otherwise query them)."""
    key = session.get_bind().url
    hit = _hooks_cache.get(key)
    now = time.monotonic()
    if hit and now - hit[0] < HOOKS_TTL:
        return hit[1]
    hooks = list(session.scalars(select(Webhook).where(Webhook.active.is_(True))))
    for h in hooks:
        session.expunge(h)
    _hooks_cache[key] = (now, hooks)
    return hooks


def alarm_consumer(bus: Bus, sessions: sessionmaker[Session], classifier: Any = None) -> Consumer:
    def handle(session: Session, d: Delivery) -> None:
        handle_alarm(session, d.event, classifier)

    return Consumer("ops-alarms", bus, ALARMS, sessions, handle)


def webhook_consumer(bus: Bus, sessions: sessionmaker[Session], post: Any = None) -> Consumer:
    def handle(session: Session, d: Delivery) -> None:
        if not deliver_webhooks(session, d.event, d.attempt, max_attempts=bus.max_deliver, post=post):
            session.commit()  # keep the log of this try, then ask for a retry
            raise RuntimeError(f"webhook delivery of {d.event.id} failed (attempt {d.attempt})")

    return Consumer("ops-webhooks", bus, OPS_EVENTS, sessions, handle, ack_wait=60.0)


class Supervisor(threading.Thread):
    """Raises 督办 for overdue incidents every ``interval`` seconds."""

    def __init__(self, engine: Engine, bus: Bus, interval: float = 60.0) -> None:
        super().__init__(name="citybase-supervisor", daemon=True)
        self.sessions = make_sessionmaker(engine)
        self.bus, self.interval = bus, interval
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(self.interval):
            try:
                with self.sessions() as session:
                    outbox.bind_context(session, Context(user_id=None))
                    service.supervise_overdue(session=session)
                    session.commit()
            except Exception:  # noqa: BLE001
                log.exception("supervision sweep failed")

    def stop(self) -> None:
        self.stop_event.set()
