"""The IoT domain's background work: the ingest workers (``iot-ingest``, one durable consumer that every worker
process shares, batches of the bridge's messages in one transaction each), the feed poster (``iot-feeds``,
前端分流 over signed webhooks, retried with back-off) and the silence sweep (``iot-silence``, a leased timer)."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from datetime import datetime
from typing import Any

from citybase.core.i18n import Msg
from citybase.core.timeutil import utcnow
from citybase.iot import service

log = logging.getLogger("citybase.iot.workers")


def _received(raw: Any) -> datetime:
    try:
        at = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        return at if at.tzinfo else utcnow()
    except ValueError:
        return utcnow()


def message_of(data: Any, via: Any = "mqtt") -> service.Message:
    """One message of the bridge's event; anything odd in it becomes a refusal with a reason, never an error."""
    if not isinstance(data, dict):
        return service.Message(device=None, payload=json.dumps(data, ensure_ascii=False, default=str)[:20000],
                               via=str(via or "mqtt")[:8], refused=("bad_event", Msg(
                                   'a message of the bus event is not a JSON object with "device" and "payload"')))
    payload: str | bytes | None = data.get("payload")
    if payload is None and isinstance(data.get("payload_b64"), str):
        try:
            payload = base64.b64decode(data["payload_b64"], validate=True)
        except (binascii.Error, ValueError):
            payload = data["payload_b64"]
    if payload is not None and not isinstance(payload, str | bytes):
        payload = str(payload)
    device = data.get("device")
    refused = None
    if isinstance(data.get("too_large"), int):
        from citybase.iot.bridge import MAX_PAYLOAD

        refused = ("too_large", Msg('the message has {size} bytes, more than the {limit} one message may have; its '
                                    'first bytes are kept', size=f"{data['too_large']:,}", limit=f"{MAX_PAYLOAD:,}"))
    return service.Message(device=device if isinstance(device, str) else None, payload=payload or "",
                           via=str(data.get("via") or via or "mqtt")[:8], received_at=_received(data.get("received_at")),
                           refused=refused)


def messages_of(data: Any) -> list[service.Message]:
    """The messages a ``citybase.iot.ingest`` event carries: the bridge's group (``{"via", "messages": [...]}``)
    or one message (the form before groups, still in a stream after an upgrade). A group that is not a list
    is one refusal holding the whole event, so it is kept aside with its reason, never retried for ever."""
    if isinstance(data, dict) and "messages" in data:
        items = data["messages"]
        if isinstance(items, list) and items:
            return [message_of(item, data.get("via")) for item in items]
        return [service.Message(device=None, payload=json.dumps(data, ensure_ascii=False, default=str)[:20000],
                                via=str(data.get("via") or "mqtt")[:8], refused=("bad_event", Msg(
                                    'the bus event\'s "messages" is not a non-empty list')))]
    return [message_of(data)]


def ingest(session: Any, deliveries: list[Any], runtime: Any) -> None:
    """iot-ingest: the messages of a batch of events checked, written and evaluated in the consumer's
    transaction. A group that failed before and comes alone is handled one message at a time (see
    :func:`ingest_one_by_one`), so that a message the ingest cannot handle costs only itself."""
    if len(deliveries) == 1 and deliveries[0].attempt > 1:
        messages = messages_of(deliveries[0].event.data)
        if len(messages) > 1:
            ingest_one_by_one(session, messages)
            return
    service.ingest(session=session, messages=[m for d in deliveries for m in messages_of(d.event.data)])


def ingest_one_by_one(session: Any, messages: list[service.Message]) -> None:
    """Each message in a transaction of its own (committed here; the consumer's final commit is then empty).
    One that raises anything but a fault that passes (the database or the bus away, ``kernel.faults``: then
    the group comes again) is kept as a dead letter with the error as its reason. Readings are idempotent, so
    what was stored before a crash here is not stored twice when the group comes again."""
    from citybase.kernel import faults

    for m in messages:
        try:
            service.ingest(session=session, messages=[m])
            session.commit()
            continue
        except Exception as exc:  # noqa: BLE001 - kept with its reason below, unless it passes
            session.rollback()
            if faults.unavailable(exc) is not None:
                raise
            log.exception("iot-ingest: a message of device %s could not be handled; kept as a dead letter", m.device)
            error = exc
        service.keep_failed(session=session, message=m, error=error)
        session.commit()


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
