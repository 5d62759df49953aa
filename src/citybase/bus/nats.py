"""The JetStream bus: the same contract as InProcessBus, durable across restarts, over NATS.

nats-py is asyncio while the bus interface is synchronous, so every NatsBus owns a private event loop
running in a daemon thread; each public call submits a coroutine to it and waits for the result with a
timeout, so nothing blocks forever when the server goes away. Once connected, the client reconnects for
as long as the server is away (each call still times out), so a relay or consumer resumes by itself after
an outage of any length.

Deployments: ``nats://host:4222?deployment=NAME`` gives a deployment its own streams ``CITYBASE_NAME`` and
``CITYBASE_NAME_DLQ``, and puts its subjects under ``NAME.`` on the wire (``NAME.citybase.ops.…``; the
events themselves keep their subjects), so several deployments share one NATS without seeing each
other's events or consumers. Without it the names stay ``CITYBASE`` / ``CITYBASE_DLQ`` on ``citybase.>``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import string
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from citybase.bus.base import (
    Bus,
    Context,
    DeadLetter,
    Delivery,
    Event,
    PublishError,
    Subscription,
    subject_matches,
)
from citybase.core.timeutil import utcnow
from citybase.core.urls import redact

log = logging.getLogger(__name__)

T = TypeVar("T")

# Headers of a dead-lettered message (the payload is the original raw bytes).
H_REASON = "Citybase-Reason"
H_CONSUMER = "Citybase-Consumer"
H_SUBJECT = "Citybase-Subject"
H_TIME = "Citybase-Time"

# Printable ASCII stays readable in headers; '%', control characters and non-ASCII are %-escaped.
_HEADER_SAFE = "".join(c for c in string.punctuation if c != "%") + " "

CONNECT_TIMEOUT = 3.0  # seconds for the TCP/TLS handshake of the first connection
OP_TIMEOUT = 10.0  # seconds for one JetStream API request, publish or ack
RECONNECT_ATTEMPTS = -1  # after the first connection: reconnect for as long as it takes (calls still time out)
RECONNECT_WAIT = 1.0  # seconds between reconnect tries


_DEPLOYMENT = re.compile(r"[A-Za-z0-9_-]{1,32}")
H_MSG_ID = "Nats-Msg-Id"  # JetStream drops a second message with the same id within the duplicate window


def parse_url(url: str) -> tuple[str, str | None]:
    """The server URL for the client (query removed) and the deployment name of ``?deployment=NAME``."""
    parts = urlsplit(url)
    deployment = None
    for key, value in parse_qsl(parts.query):
        if key != "deployment":
            raise ValueError(f"unknown option {key!r} in bus URL {_redact(url)}: nats:// knows deployment")
        if not _DEPLOYMENT.fullmatch(value):
            raise ValueError(f"deployment {value!r} in bus URL {_redact(url)} must be 1-32 letters, digits, _ or -")
        deployment = value
    return urlunsplit(parts._replace(query="")), deployment


def _hdr(value: str) -> str:
    return quote(value, safe=_HEADER_SAFE)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"no answer within {CONNECT_TIMEOUT:g} s"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _redact(url: str) -> str:
    """The URL without user, password or token, for error messages."""
    return redact(url, "NATS URL")


class _NatsDelivery(Delivery):
    def __init__(self, sub: _NatsSubscription, msg: Msg, event: Event, attempt: int) -> None:
        self._sub, self._msg = sub, msg
        self.event, self.attempt = event, attempt

    def ack(self) -> None:
        """Acknowledge and wait until JetStream has recorded it."""
        self._sub._bus._call(self._sub._settle(self._msg, "ack"))

    def nak(self, delay: float = 0.0) -> None:
        """Ask JetStream to redeliver it after ``delay`` seconds (now by default)."""
        self._sub._bus._call(self._sub._settle(self._msg, "nak", delay))

    def reject(self, reason: str) -> None:
        """Copy it to the dead-letter stream with the reason, then terminate it (no redelivery)."""
        bus = self._sub._bus
        bus._call(bus._dead_letter(self._msg, reason, self._sub._durable))
        bus._call(self._sub._settle(self._msg, "term"))


class _NatsSubscription(Subscription):
    """A bound pull subscription; use one thread per Subscription (deliveries may be settled anywhere)."""

    def __init__(self, bus: NatsBus, durable: str, psub: JetStreamContext.PullSubscription) -> None:
        self._bus, self._durable, self._psub = bus, durable, psub
        self._outstanding: dict[int, Msg] = {}  # handed out, not yet settled; touched only on the loop
        self._buffer: list[Msg] = []  # pulled beyond the requested batch, served first next time
        self._closed = False

    def fetch(self, batch: int = 10, timeout: float = 1.0) -> list[Delivery]:
        """Pull up to ``batch`` deliveries; dead-letters malformed and over-delivered messages on the way."""
        if self._closed:
            raise RuntimeError(f"subscription {self._durable!r} is closed")
        if batch < 1:
            raise ValueError("batch must be at least 1")
        return self._bus._call(self._fetch(batch, timeout), timeout + OP_TIMEOUT)

    def ack_all(self, deliveries: Sequence[Delivery]) -> None:
        """Ack these deliveries with their acks in flight together (each still waits for JetStream's
        confirmation), instead of one round trip after another."""
        mine = [d._msg for d in deliveries if isinstance(d, _NatsDelivery) and d._sub is self]
        for d in deliveries:
            if not (isinstance(d, _NatsDelivery) and d._sub is self):
                d.ack()
        if mine:
            self._bus._call(self._ack_together(mine), OP_TIMEOUT * 2)

    async def _ack_together(self, msgs: list[Msg]) -> None:
        await asyncio.gather(*(self._settle(m, "ack") for m in msgs))

    def close(self) -> None:
        """Nak what was fetched but not settled and unsubscribe; the durable consumer stays on the server."""
        if self._closed:
            return
        self._closed = True
        self._bus._subs.discard(self)
        if self._bus._nc is not None and not self._bus._nc.is_closed:
            self._bus._call(self._close())

    async def _fetch(self, batch: int, timeout: float) -> list[Delivery]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            # Messages that are dead-lettered here do not count: keep pulling until the deadline.
            left = max(deadline - loop.time(), 0.05)
            msgs, self._buffer = self._buffer, []
            if not msgs:
                try:
                    msgs = await self._psub.fetch(batch, timeout=left)
                except TimeoutError:  # nats.errors.TimeoutError included
                    msgs = []
            # nats-py may hand over more than asked (late replies to an earlier pull): keep the rest.
            msgs, self._buffer = msgs[:batch], msgs[batch:]
            out = [d for m in msgs if (d := await self._accept(m)) is not None]
            if out or loop.time() >= deadline:
                return out

    async def _accept(self, msg: Msg) -> Delivery | None:
        """The delivery for one pulled message, or None once it has been put in the dead-letter stream."""
        attempt = msg.metadata.num_delivered
        if attempt > self._bus.max_deliver:
            reason = f"not acknowledged after {self._bus.max_deliver} deliveries"
        else:
            try:
                return self._track(msg, Event.decode(msg.data), attempt)
            except ValueError as exc:
                reason = f"malformed event: {exc}"
        await self._bus._dead_letter(msg, reason, self._durable)
        await msg.term()
        return None

    def _track(self, msg: Msg, event: Event, attempt: int) -> Delivery:
        self._outstanding[id(msg)] = msg
        return _NatsDelivery(self, msg, event, attempt)

    async def _settle(self, msg: Msg, how: str, delay: float = 0.0) -> None:
        self._outstanding.pop(id(msg), None)
        try:
            if how == "ack":
                await msg.ack_sync(timeout=OP_TIMEOUT)
            elif how == "nak":
                await msg.nak(delay=delay if delay > 0 else None)
            else:
                await msg.term()
        except nats.errors.MsgAlreadyAckdError:
            pass  # settling twice is harmless, as with the in-process bus

    async def _close(self) -> None:
        # Hand back what was fetched but not settled, so a resumed consumer sees it at once
        # instead of after ack_wait (a crashed process still gets it back after ack_wait).
        for msg in [*self._outstanding.values(), *self._buffer]:
            await self._settle(msg, "nak")
        try:
            await self._psub.unsubscribe()
        except nats.errors.Error as exc:
            log.debug("unsubscribe %s: %s", self._durable, exc)
        await self._bus._nc.flush(timeout=OP_TIMEOUT)


class NatsBus(Bus):
    """The bus over NATS JetStream: stream ``stream`` on ``<prefix>.>``, dead letters on ``<prefix>_dlq.>``
    (with ``?deployment=NAME`` in the URL: ``<stream>_NAME`` on ``NAME.<prefix>.>``, see the module doc)."""

    def __init__(
        self,
        url: str,
        *,
        stream: str = "CITYBASE",
        subjects_prefix: str = "citybase",
        max_deliver: int = 5,
    ) -> None:
        if max_deliver < 1:
            raise ValueError("max_deliver must be at least 1")
        server, deployment = parse_url(url)
        self.url = url
        self.deployment = deployment
        self.stream = f"{stream}_{deployment.upper()}" if deployment else stream
        self.prefix = subjects_prefix
        self.dlq_stream = f"{self.stream}_DLQ"
        self.dlq_prefix = f"{subjects_prefix}_dlq"
        self._ns = f"{deployment}." if deployment else ""  # wire subjects = namespace + subject
        self._server = server
        self.max_deliver = max_deliver
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._subs: set[_NatsSubscription] = set()
        self._closing = False
        self._last_error: Exception | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="citybase-nats", daemon=True)
        self._thread.start()
        try:
            self._call(self._connect(), CONNECT_TIMEOUT + OP_TIMEOUT)
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            self.close()
            cause = _describe(self._last_error or exc)
            raise ConnectionError(f"cannot reach NATS at {_redact(url)}: {cause}") from exc
        except BaseException:
            self.close()
            raise
        try:
            self._call(self._ensure_streams())
        except (TimeoutError, nats.errors.Error) as exc:
            self.close()
            raise ConnectionError(
                f"NATS at {_redact(url)} cannot set up streams {self.stream}/{self.dlq_stream} "
                f"(is JetStream enabled, e.g. nats-server -js?): {_describe(exc)}"
            ) from exc
        except BaseException:
            self.close()
            raise

    # -- the Bus contract --

    def publish(self, subject: str, data: dict[str, Any], *, context: Context | None = None) -> Event:
        """Publish durably (waits for JetStream's acknowledgement) and return the event."""
        event = Event(subject=subject, data=data, context=context or Context())
        self.publish_raw(subject, event.encode())
        return event

    def publish_raw(self, subject: str, raw: bytes) -> None:
        """Store arbitrary bytes on a subject of this bus's stream."""
        self._publish(subject, raw, None)

    def publish_event(self, event: Event) -> None:
        """Publish an event made elsewhere with its id as ``Nats-Msg-Id``: a re-publication within the
        stream's duplicate window (2 minutes by default) is stored once."""
        self._publish(event.subject, event.encode(), {H_MSG_ID: event.id})

    def publish_events(self, events: Sequence[Event]) -> None:
        """Publish a batch pipelined (all sent, then all acknowledgements awaited), each with its
        ``Nats-Msg-Id``; on a failure raises PublishError with the count of leading events stored."""
        for e in events:
            if not subject_matches(f"{self.prefix}.>", e.subject):
                raise ValueError(f"subject {e.subject!r} is outside this bus's stream ({self.prefix}.>)")
        nc = self._nc
        if nc is not None and nc.is_reconnecting:
            raise PublishError(0, ConnectionError(f"NATS at {_redact(self.url)} is away (reconnecting)"))
        try:
            results = self._call(self._publish_many(events), OP_TIMEOUT * 2)
        except Exception as exc:
            raise PublishError(0, exc) from exc
        for i, r in enumerate(results):
            if isinstance(r, BaseException):
                raise PublishError(i, r) from r

    async def _publish_many(self, events: Sequence[Event]) -> list[Any]:
        js = self._js_ctx()
        return await asyncio.gather(*(js.publish(self._ns + e.subject, e.encode(), timeout=OP_TIMEOUT,
                                                 stream=self.stream, headers={H_MSG_ID: e.id})
                                      for e in events), return_exceptions=True)

    def _publish(self, subject: str, raw: bytes, headers: dict[str, str] | None) -> None:
        if not subject_matches(f"{self.prefix}.>", subject):
            raise ValueError(f"subject {subject!r} is outside this bus's stream ({self.prefix}.>)")
        nc = self._nc
        if nc is not None and nc.is_reconnecting:
            # Fail at once rather than buffer and wait OP_TIMEOUT: the caller (the outbox relay) retries.
            raise ConnectionError(f"NATS at {_redact(self.url)} is away (reconnecting); publish again later")
        self._call(self._js_ctx().publish(self._ns + subject, bytes(raw), timeout=OP_TIMEOUT, stream=self.stream,
                                          headers=headers))

    def subscribe(self, subjects: str, durable: str, *, ack_wait: float = 30.0) -> Subscription:
        """Open (or resume) the durable pull consumer ``durable`` filtered on ``subjects``."""
        sub = self._call(self._subscribe(subjects, durable, ack_wait))
        self._subs.add(sub)
        return sub

    def dead_letters(self) -> list[DeadLetter]:
        """Every message in the dead-letter stream, oldest first."""
        return self._call(self._dead_letters(), OP_TIMEOUT * 6)

    def close(self) -> None:
        """Close the subscriptions (unsettled deliveries are nak'ed), drain the connection, stop the loop."""
        self._closing = True
        for sub in list(self._subs):
            try:
                sub.close()
            except Exception as exc:  # keep closing the rest
                log.warning("closing subscription %s: %s", sub._durable, exc)
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed and self._thread.is_alive():
            try:
                self._call(nc.drain())
            except Exception as exc:
                log.warning("draining NATS connection: %s", exc)
                try:
                    self._call(nc.close())
                except Exception:
                    pass
        if self._thread.is_alive():
            try:
                self._call(_cancel_remaining_tasks(), 5.0)
            except Exception:
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5.0)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()

    # -- extras --

    def delete_streams(self) -> None:
        """Delete this bus's stream and dead-letter stream with everything in them (tests, resets)."""
        self._call(self._delete_streams())

    # -- internals --

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = OP_TIMEOUT) -> T:
        """Run ``coro`` on the private loop and wait for it; TimeoutError after ``timeout`` seconds."""
        if not self._thread.is_alive():
            coro.close()
            raise RuntimeError("the NATS bus is closed")
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:  # the same class as TimeoutError since Python 3.11
            if fut.done() and not fut.cancelled():
                raise  # the coroutine's own timeout
            fut.cancel()
            raise TimeoutError(f"NATS at {_redact(self.url)} did not answer within {timeout:g} s") from None

    def _js_ctx(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("the NATS bus is closed")
        return self._js

    async def _connect(self) -> None:
        async def on_error(exc: Exception) -> None:
            self._last_error = exc
            log.warning("NATS %s: %r", _redact(self.url), exc)

        async def on_disconnect() -> None:
            if not self._closing:
                log.warning("disconnected from NATS %s", _redact(self.url))

        async def on_reconnect() -> None:
            log.info("reconnected to NATS %s", _redact(self.url))

        # The first connection fails fast (one retry; 0 would mean "retry forever" to nats-py); once
        # connected, reconnects are allowed a bounded number of times so a server restart is survived
        # but an outage does not hang forever.
        nc = await nats.connect(
            self._server,
            connect_timeout=CONNECT_TIMEOUT,
            allow_reconnect=False,
            max_reconnect_attempts=1,
            reconnect_time_wait=RECONNECT_WAIT,
            error_cb=on_error,
            disconnected_cb=on_disconnect,
            reconnected_cb=on_reconnect,
        )
        nc.options["allow_reconnect"] = True
        nc.options["max_reconnect_attempts"] = RECONNECT_ATTEMPTS
        self._nc, self._js = nc, nc.jetstream(timeout=OP_TIMEOUT)

    async def _ensure_streams(self) -> None:
        js = self._js_ctx()
        for name, subject in ((self.stream, f"{self._ns}{self.prefix}.>"),
                              (self.dlq_stream, f"{self._ns}{self.dlq_prefix}.>")):
            try:
                info = await js.stream_info(name)
            except nats.js.errors.NotFoundError:
                await js.add_stream(name=name, subjects=[subject], storage=api.StorageType.FILE)
                continue
            subjects = list(info.config.subjects or [])
            if subject not in subjects:  # keep what an operator configured, only add our subjects
                await js.update_stream(info.config.evolve(subjects=[*subjects, subject]))

    async def _subscribe(self, subjects: str, durable: str, ack_wait: float) -> _NatsSubscription:
        js = self._js_ctx()
        wire = self._ns + subjects
        config = api.ConsumerConfig(
            name=durable,
            durable_name=durable,
            ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_wait=ack_wait,
            filter_subject=wire,
            max_deliver=-1,  # max_deliver is enforced here, so the last delivery can be dead-lettered
        )
        try:
            info = await js.consumer_info(self.stream, durable)
        except nats.js.errors.NotFoundError:
            await js.add_consumer(self.stream, config)
        else:
            if info.config.filter_subject != wire:
                following = (info.config.filter_subject or "").removeprefix(self._ns)
                raise ValueError(f"durable {durable!r} already follows {following!r}")
            if info.config.ack_wait is None or abs(info.config.ack_wait - ack_wait) > 1e-6:
                await js.add_consumer(self.stream, config)  # create-or-update: ack_wait may change
        psub = await js.pull_subscribe_bind(durable=durable, stream=self.stream)
        return _NatsSubscription(self, durable, psub)

    async def _dead_letter(self, msg: Msg, reason: str, consumer: str) -> None:
        subject = msg.subject.removeprefix(self._ns)
        headers = {
            H_REASON: _hdr(reason),
            H_CONSUMER: _hdr(consumer),
            H_SUBJECT: _hdr(subject),
            H_TIME: utcnow().isoformat(),
        }
        await self._js_ctx().publish(
            f"{self._ns}{self.dlq_prefix}.{subject}",
            msg.data,
            timeout=OP_TIMEOUT,
            stream=self.dlq_stream,
            headers=headers,
        )

    async def _dead_letters(self) -> list[DeadLetter]:
        js = self._js_ctx()
        state = (await js.stream_info(self.dlq_stream)).state
        out: list[DeadLetter] = []
        if not state.messages:
            return out
        for seq in range(state.first_seq, state.last_seq + 1):
            try:
                m = await js.get_msg(self.dlq_stream, seq)
            except nats.js.errors.NotFoundError:
                continue  # deleted by hand
            h = m.headers or {}
            subject = unquote(h.get(H_SUBJECT, "")) or (m.subject or "").removeprefix(f"{self._ns}{self.dlq_prefix}.")
            out.append(
                DeadLetter(
                    subject=subject,
                    raw=m.data or b"",
                    reason=unquote(h.get(H_REASON, "")),
                    consumer=unquote(h.get(H_CONSUMER, "")),
                    time=h.get(H_TIME) or (m.time.isoformat() if m.time else utcnow().isoformat()),
                )
            )
        return out

    async def _delete_streams(self) -> None:
        js = self._js_ctx()
        for name in (self.stream, self.dlq_stream):
            try:
                await js.delete_stream(name)
            except nats.js.errors.NotFoundError:
                pass


async def _cancel_remaining_tasks() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
