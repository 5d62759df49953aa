"""The IoT domain's background work: the ingest workers (``iot-ingest``, one durable consumer that every worker
process shares, batches of the bridge's messages in one transaction each), the feed poster (``iot-feeds``,
前端分流 over signed webhooks, retried with back-off) and the silence sweep (``iot-silence``, a leased timer)."""

from __future__ import annotations

import base64
import binascii
import logging
from datetime import datetime
from typing import Any

from citybase.core.timeutil import utcnow
from citybase.iot import service

log = logging.getLogger("citybase.iot.workers")


def _received(raw: Any) -> datetime:
    try:
        at = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        return at if at.tzinfo else utcnow()
    except ValueError:
        return utcnow()


def message_of(data: Any) -> service.Message:
    """The bridge's event as a message; anything odd in it becomes a refusal with a reason, never an error."""
    if not isinstance(data, dict):
        return service.Message(device=None, payload=str(data)[:20000], via="mqtt")
    payload: str | bytes | None = data.get("payload")
    if payload is None and isinstance(data.get("payload_b64"), str):
        try:
            payload = base64.b64decode(data["payload_b64"], validate=True)
        except (binascii.Error, ValueError):
            payload = data["payload_b64"]
    if payload is not None and not isinstance(payload, str | bytes):
        payload = str(payload)
    device = data.get("device")
    return service.Message(device=device if isinstance(device, str) else None, payload=payload or "",
                           via=str(data.get("via") or "mqtt")[:8], received_at=_received(data.get("received_at")))


def ingest(session: Any, deliveries: list[Any], runtime: Any) -> None:
    """iot-ingest: a batch of messages checked, written and evaluated in the consumer's transaction."""
    service.ingest(session=session, messages=[message_of(d.event.data) for d in deliveries])


class FeedFailed(Exception):
    """The department's system did not take the readings; the delivery comes back after the back-off."""


def feed(session: Any, delivery: Any, runtime: Any) -> None:
    """iot-feeds: a feed's readings POSTed, signed, to its webhook (a feed without a URL is read on the bus)."""
    from citybase.kernel import webhooks

    data = delivery.event.data
    try:
        f = service.get_feed(session=session, feed_id=int(data.get("feed_id")))
    except Exception:  # noqa: BLE001 - the feed was deleted (or the event is not one): nothing to send
        return
    if not f.url or not f.active:
        return
    a = webhooks.deliver(f.url, f.secret or "", delivery.event, attempt=delivery.attempt,
                         max_attempts=runtime.bus.max_deliver)
    if not a.ok:
        log.warning("feed %s: %s (attempt %s)", f.name, a.error, delivery.attempt)
        if a.status != "gave_up":
            raise FeedFailed(a.error or "failed")


def sweep(runtime: Any) -> None:
    """iot-silence: devices silent past their type's limit go offline, with an alarm."""
    from citybase.bus import Context
    from citybase.iot.types import DEVICE_TYPES
    from citybase.kernel import outbox

    gone = 0
    for code in DEVICE_TYPES:  # one transaction a type: the writer is never held for the whole sweep
        with runtime.sessions() as session:
            outbox.bind_context(session, Context(user_id=None))
            gone += len(service.sweep_silent(session=session, type_codes=[code]))
            session.commit()
    if gone:
        log.info("iot: %d device(s) went offline", gone)


def forget_devices(runtime: Any) -> None:
    service.DIRECTORY.forget()


def forget_feeds(runtime: Any) -> None:
    service.FEEDS.forget()
