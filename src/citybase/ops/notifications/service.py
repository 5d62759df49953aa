"""Notifications: reporters told the outcome of their incident, and webhooks that carry the loop's events
to department systems (HMAC-signed, one delivery log row per attempt, retried by the bus's redelivery).

Functions take ``session`` keyword-only and never commit (the webhook consumer commits its log)."""

from __future__ import annotations

import secrets
import time
from typing import Any

from sqlalchemy.orm import Session

from citybase.bus import Event
from citybase.bus.base import subject_matches
from citybase.core.errors import InvalidInput
from citybase.core.i18n import Msg
from citybase.core.timeutil import utcnow
from citybase.kernel import outbox, webhooks
from citybase.kernel.runtime import invalidate
from citybase.ops.notifications.models import Reporter, Webhook, WebhookDelivery
from citybase.ops.notifications.repository import ReporterRepository, WebhookRepository
from citybase.ops.workflow.models import Incident
from citybase.ops.workflow.repository import IncidentRepository
from citybase.registry import service as registry

# ---------------------------------------------------------------- reporters


def _notify_reporters(session: Session, inc: Incident, outcome: str | None = None) -> None:
    """Tell every reporter not yet told the outcome (the last timeline reason, or ``outcome``); one event each."""
    last = IncidentRepository(session).last_entry(inc.id)
    text = outcome or f"您反映的问题（工单 {inc.code}）已办结：{(last.reason if last and last.reason else '已处置')}"
    now = utcnow()
    for r in ReporterRepository(session).unnotified(inc.id):
        r.notified_at, r.outcome = now, text
        outbox.queue(session, "citybase.ops.reporter.notified", {"incident_id": inc.id, "code": inc.code,
                                                                    "reporter_id": r.id, "channel": r.channel,
                                                                    "source_incident_id": r.source_incident_id})


def reporters(*, session: Session, incident_id: int) -> list[Reporter]:
    """Everyone who reported an incident (several after a merge), first reporter first."""
    return ReporterRepository(session).of_incident(incident_id)


# ---------------------------------------------------------------- webhooks


def deliver_webhooks(session: Session, event: Event, attempt: int, *, max_attempts: int,
                     post: webhooks.Post | None = None) -> bool:
    """POST the event to every matching webhook not yet served (signed, kernel.webhooks); log each try.
    True when all succeeded."""
    dept = event.data.get("main_department_id") or event.data.get("department_id")
    hooks = [h for h in _active_hooks(session) if subject_matches(h.events, event.subject)
             and (h.department_id is None or h.department_id == dept)]
    ok = True
    for hook in hooks:
        if WebhookRepository(session).delivered(hook.id, event.id):
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
    hooks = WebhookRepository(session).active()
    for h in hooks:
        session.expunge(h)
    _hooks_cache[key] = (now, hooks)
    return hooks


def list_webhooks(*, session: Session) -> list[Webhook]:
    """Every webhook, oldest first."""
    return WebhookRepository(session).all()


def add_webhook(*, session: Session, url: Any, events: Any = None, department_code: str | None = None,
                secret: str | None = None) -> Webhook:
    """Subscribe a department system (or every department's, without a code) to events under citybase.ops."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise InvalidInput(Msg('url must be an http(s) URL'), fix=Msg('Send {{"url": "https://…", "events": "citybase.ops.>"}}.'))
    events = events or "citybase.ops.>"
    if not isinstance(events, str) or not events.startswith("citybase.ops."):
        raise InvalidInput(Msg('events must be a subject pattern under citybase.ops.'),
                           fix=Msg('e.g. citybase.ops.> or citybase.ops.incident.dispatch'))
    dept = department_code
    dept_id = registry.get_department(session=session, code=dept).id if dept else None
    hook = Webhook(department_id=dept_id, url=url, secret=secret or secrets.token_hex(16), events=events,
                   active=True, created_at=utcnow())
    session.add(hook)
    session.flush()
    forget_webhooks()
    invalidate(session, "ops.webhooks")  # the other processes (the worker delivering them) drop theirs
    return hook


def webhook_deliveries(*, session: Session, webhook_id: int, limit: int = 100) -> list[WebhookDelivery]:
    """The newest delivery attempts of a webhook."""
    return WebhookRepository(session).deliveries(webhook_id, limit=limit)
