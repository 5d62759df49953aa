"""Background work of the incident loop, each a durable consumer on the bus or a timer:

* alarms: ``citybase.iot.alarm.*`` events become incidents (alarm type → category);
* webhooks: every ``citybase.ops.>`` event is POSTed to the subscribed department systems, with
  retries (the bus redelivers) and a delivery log;
* supervision: overdue incidents raise 督办 once a minute, in one process at a time (a leased timer).

A message that cannot be handled for a reason in the message itself is rejected to the
dead-letter store with that reason; a transient failure is retried, never looped forever."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from citybase.bus import Bus, Context, Delivery, Event
from citybase.bus.base import subject_matches
from citybase.core.errors import CitybaseError
from citybase.core.timeutil import utcnow
from citybase.kernel.timers import Timer
from citybase.ops import flows, service
from citybase.ops.catalogue import ALARM_CATEGORIES
from citybase.ops.models import Webhook, WebhookDelivery

log = logging.getLogger("citybase.ops.workers")
ALARMS = "citybase.iot.alarm.>"
OPS_EVENTS = "citybase.ops.>"
IOT_ACTOR = service.Actor("iot", roles=frozenset({"system"}))


class Reject(Exception):
    """The message itself is wrong; keep it aside with this reason."""


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
                     post: Callable[[str, bytes, dict[str, str]], int] | None = None) -> bool:
    """POST the event to every matching webhook not yet served; log each try. True when all succeeded."""
    post = post or _http_post
    dept = event.data.get("main_department_id") or event.data.get("department_id")
    hooks = [h for h in _active_hooks(session) if subject_matches(h.events, event.subject)
             and (h.department_id is None or h.department_id == dept)]
    if not hooks:
        return True
    body = json.dumps({"id": event.id, "subject": event.subject, "time": event.time, "data": event.data,
                       "context": {"id": event.context.id, "parent_id": event.context.parent_id}},
                      ensure_ascii=False).encode()
    ok = True
    for hook in hooks:
        done = session.scalar(select(WebhookDelivery.id).where(WebhookDelivery.webhook_id == hook.id,
                                                               WebhookDelivery.event_id == event.id,
                                                               WebhookDelivery.status == "delivered"))
        if done:
            continue
        sig = hmac.new(hook.secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "X-Citybase-Event": event.subject,
                   "X-Citybase-Delivery": event.id, "X-Citybase-Signature": f"sha256={sig}"}
        code, error = None, None
        try:
            code = post(hook.url, body, headers)
            if not 200 <= code < 300:
                error = f"HTTP {code}"
        except Exception as exc:  # noqa: BLE001 - any network failure is logged and retried
            error = f"{exc.__class__.__name__}: {exc}"[:500]
        status = "delivered" if error is None else ("gave_up" if attempt >= max_attempts else "failed")
        session.add(WebhookDelivery(webhook_id=hook.id, event_id=event.id, subject=event.subject, attempt=attempt,
                                    status=status, response_code=code, error=error, at=utcnow()))
        ok = ok and error is None
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


def _http_post(url: str, body: bytes, headers: dict[str, str]) -> int:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - admin-configured URL
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


class Consumer(threading.Thread):
    """Pulls a durable subscription and hands each delivery to ``handle`` in its own transaction."""

    def __init__(self, name: str, bus: Bus, subjects: str, sessions: sessionmaker[Session],
                 handle: Callable[[Session, Delivery], None], ack_wait: float = 30.0) -> None:
        super().__init__(name=f"citybase-{name}", daemon=True)
        self.bus, self.sessions, self.handle = bus, sessions, handle
        self.sub = bus.subscribe(subjects, durable=name, ack_wait=ack_wait)
        self.stop_event = threading.Event()
        self.handled = 0

    def run_once(self, timeout: float = 0.5) -> int:
        """Fetch and handle one batch; returns how many deliveries were settled."""
        n = 0
        for delivery in self.sub.fetch(batch=50, timeout=timeout):
            session = self.sessions()
            try:
                self.handle(session, delivery)
                session.commit()
                flows.publish_pending(session, self.bus, delivery.event.context.child())
                delivery.ack()
            except Reject as exc:
                session.rollback()
                delivery.reject(str(exc))
            except Exception:  # noqa: BLE001 - transient: let the bus redeliver (dead-lettered after max)
                session.rollback()
                log.exception("%s failed on %s (attempt %s)", self.name, delivery.event.subject, delivery.attempt)
                delivery.nak()
            finally:
                session.close()
            n += 1
        self.handled += n
        return n

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - a broken connection must not kill the worker
                log.exception("%s: fetch failed", self.name)
                self.stop_event.wait(2)

    def stop(self) -> None:
        self.stop_event.set()


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


class Supervisor(Timer):
    """Raises 督办 for overdue incidents every ``interval`` seconds, in one process of the deployment at a
    time (the holder of the ``ops-supervision`` lease)."""

    LEASE = "ops-supervision"

    def __init__(self, engine: Engine, bus: Bus, interval: float = 60.0, **timer: Any) -> None:
        super().__init__(self.LEASE, self.sweep, engine=engine, interval=interval, **timer)
        self.bus = bus

    def sweep(self) -> int:
        """One sweep in its own transaction; returns how many supervisions it raised."""
        with self.sessions() as session:
            raised = service.supervise_overdue(session=session)
            flows.commit_and_publish(session, self.bus, Context(user_id=None))
        return len(raised)
