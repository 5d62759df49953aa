"""The in-process bus: one append-only log, per-consumer positions, redelivery and dead letters."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from citybase.bus.base import (
    Bus,
    Context,
    DeadLetter,
    Delivery,
    Event,
    Subscription,
    subject_matches,
)


@dataclass
class _Pending:
    seq: int
    attempt: int
    due: float  # monotonic time after which it is redelivered


@dataclass
class _Consumer:
    subjects: str
    cursor: int = 0  # next log index to look at
    pending: dict[int, _Pending] = field(default_factory=dict)
    done: set[int] = field(default_factory=set)


class _MemDelivery(Delivery):
    def __init__(self, bus: InProcessBus, consumer: str, seq: int, event: Event, attempt: int) -> None:
        self._bus, self._consumer, self._seq = bus, consumer, seq
        self.event, self.attempt = event, attempt

    def ack(self) -> None:
        self._bus._settle(self._consumer, self._seq)

    def nak(self) -> None:
        with self._bus._cond:
            p = self._bus._consumers[self._consumer].pending.get(self._seq)
            if p:
                p.due = 0.0
            self._bus._cond.notify_all()

    def reject(self, reason: str) -> None:
        subject, raw = self._bus._log[self._seq]
        self._bus._dead(DeadLetter(subject, raw, reason, self._consumer))
        self._bus._settle(self._consumer, self._seq)


class _MemSubscription(Subscription):
    def __init__(self, bus: InProcessBus, durable: str, ack_wait: float) -> None:
        self._bus, self._durable, self._ack_wait = bus, durable, ack_wait

    def fetch(self, batch: int = 10, timeout: float = 1.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        with self._bus._cond:
            while True:
                out = self._bus._collect(self._durable, batch, self._ack_wait)
                left = deadline - time.monotonic()
                if out or left <= 0:
                    return out
                self._bus._cond.wait(min(left, 0.05))

    def close(self) -> None:
        pass


class InProcessBus(Bus):
    """Default bus: lives in this process (lost on restart), same semantics as the JetStream one."""

    def __init__(self, max_deliver: int = 5) -> None:
        self.max_deliver = max_deliver
        self._log: list[tuple[str, bytes]] = []
        self._consumers: dict[str, _Consumer] = {}
        self._dlq: list[DeadLetter] = []
        self._cond = threading.Condition()

    def publish(self, subject: str, data: dict[str, Any], *, context: Context | None = None) -> Event:
        event = Event(subject=subject, data=data, context=context or Context())
        self.publish_raw(subject, event.encode())
        return event

    def publish_raw(self, subject: str, raw: bytes) -> None:
        with self._cond:
            self._log.append((subject, bytes(raw)))
            self._cond.notify_all()

    def subscribe(self, subjects: str, durable: str, *, ack_wait: float = 30.0) -> Subscription:
        with self._cond:
            c = self._consumers.get(durable)
            if c is None:
                self._consumers[durable] = _Consumer(subjects)
            elif c.subjects != subjects:
                raise ValueError(f"durable {durable!r} already follows {c.subjects!r}")
            else:
                # A resumed consumer sees its unacked messages again at once.
                for p in c.pending.values():
                    p.due = 0.0
        return _MemSubscription(self, durable, ack_wait)

    def dead_letters(self) -> list[DeadLetter]:
        with self._cond:
            return list(self._dlq)

    def close(self) -> None:
        pass

    # -- internals (called with or without the lock as marked) --

    def _dead(self, letter: DeadLetter) -> None:
        with self._cond:
            self._dlq.append(letter)

    def _settle(self, durable: str, seq: int) -> None:
        with self._cond:
            c = self._consumers[durable]
            c.pending.pop(seq, None)
            c.done.add(seq)

    def _collect(self, durable: str, batch: int, ack_wait: float) -> list[Delivery]:
        """Called with the lock held: due redeliveries first, then new messages."""
        c = self._consumers[durable]
        now = time.monotonic()
        out: list[Delivery] = []
        candidates = sorted(p.seq for p in c.pending.values() if p.due <= now)
        while c.cursor < len(self._log) and len(candidates) < batch:
            seq = c.cursor
            c.cursor += 1
            if subject_matches(c.subjects, self._log[seq][0]):
                c.pending[seq] = _Pending(seq, 0, 0.0)
                candidates.append(seq)
        for seq in candidates:
            if len(out) >= batch:
                break
            p = c.pending[seq]
            subject, raw = self._log[seq]
            p.attempt += 1
            if p.attempt > self.max_deliver:
                self._dlq.append(DeadLetter(subject, raw, f"not acknowledged after {self.max_deliver} deliveries", durable))
                del c.pending[seq]
                c.done.add(seq)
                continue
            try:
                event = Event.decode(raw)
            except ValueError as exc:
                self._dlq.append(DeadLetter(subject, raw, f"malformed event: {exc}", durable))
                del c.pending[seq]
                c.done.add(seq)
                continue
            p.due = now + ack_wait
            out.append(_MemDelivery(self, durable, seq, event, p.attempt))
        return out
