"""The in-process bus: a bounded log, per-consumer positions, redelivery and dead letters.

A message is kept only while some durable consumer whose subjects match it has not settled it (ack,
reject, or dead-lettered); a message nobody consumes is kept for a consumer that may subscribe later, but
only within limits, like a JetStream stream's: at most ``max_msgs`` such messages, none older than
``max_age`` seconds (the oldest go first). Dead letters are kept up to ``max_msgs`` too. So memory stays
bounded however long the process serves, as long as its consumers keep up."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
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

MAX_MSGS = 10_000  # messages nobody consumes, kept for a later subscriber
MAX_AGE = 3600.0  # seconds such a message is kept at most


@dataclass
class _Msg:
    subject: str
    raw: bytes
    at: float  # monotonic publish time
    owed: set[str]  # durable consumers that match it and have not settled it yet


@dataclass
class _Pending:
    seq: int
    attempt: int
    due: float  # monotonic time after which it is redelivered


@dataclass
class _Consumer:
    subjects: str
    cursor: int = 0  # next log sequence to look at
    pending: dict[int, _Pending] = field(default_factory=dict)
    owed: int = 0  # messages it has not settled yet


class _MemDelivery(Delivery):
    def __init__(self, bus: InProcessBus, consumer: str, seq: int, event: Event, attempt: int) -> None:
        self._bus, self._consumer, self._seq = bus, consumer, seq
        self.event, self.attempt = event, attempt

    def ack(self) -> None:
        self._bus._settle(self._consumer, self._seq)

    def nak(self, delay: float = 0.0) -> None:
        with self._bus._cond:
            p = self._bus._consumers[self._consumer].pending.get(self._seq)
            if p:
                p.due = time.monotonic() + max(delay, 0.0) if delay else 0.0
            self._bus._cond.notify_all()

    def reject(self, reason: str) -> None:
        with self._bus._cond:
            msg = self._bus._log.get(self._seq)
            if msg is not None and self._consumer in msg.owed:
                self._bus._dlq.append(DeadLetter(msg.subject, msg.raw, reason, self._consumer))
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

    def __init__(self, max_deliver: int = 5, *, max_msgs: int = MAX_MSGS, max_age: float = MAX_AGE) -> None:
        if max_msgs < 1 or max_age <= 0:
            raise ValueError("max_msgs must be at least 1 and max_age positive")
        self.max_deliver, self.max_msgs, self.max_age = max_deliver, max_msgs, max_age
        self._log: dict[int, _Msg] = {}
        self._next = 0  # sequence of the next message
        self._first = 0  # no message below this sequence is kept
        self._unowed: OrderedDict[int, None] = OrderedDict()  # kept messages nobody owes, oldest first
        self._consumers: dict[str, _Consumer] = {}
        self._dlq: deque[DeadLetter] = deque(maxlen=max_msgs)
        self._cond = threading.Condition()

    def publish(self, subject: str, data: dict[str, Any], *, context: Context | None = None) -> Event:
        event = Event(subject=subject, data=data, context=context or Context())
        self.publish_raw(subject, event.encode())
        return event

    def publish_raw(self, subject: str, raw: bytes) -> None:
        with self._cond:
            seq = self._next
            self._next += 1
            owed = {name for name, c in self._consumers.items() if subject_matches(c.subjects, subject)}
            for name in owed:
                self._consumers[name].owed += 1
            self._log[seq] = _Msg(subject, bytes(raw), time.monotonic(), owed)
            if not owed:
                self._unowed[seq] = None
                self._enforce_limits()
            self._cond.notify_all()

    def subscribe(self, subjects: str, durable: str, *, ack_wait: float = 30.0) -> Subscription:
        with self._cond:
            c = self._consumers.get(durable)
            if c is None:
                # A new durable starts at the oldest message kept (deliver all) and now owes what it matches.
                c = self._consumers[durable] = _Consumer(subjects, cursor=self._oldest())
                for seq in list(self._unowed):
                    msg = self._log[seq]
                    if subject_matches(subjects, msg.subject):
                        msg.owed.add(durable)
                        del self._unowed[seq]
                for msg in self._log.values():
                    if msg.owed and subject_matches(subjects, msg.subject):
                        msg.owed.add(durable)
                c.owed = sum(1 for msg in self._log.values() if durable in msg.owed)
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

    def stored(self) -> int:
        """How many messages the bus holds now (what some consumer owes plus what nobody consumes, bounded)."""
        with self._cond:
            return len(self._log)

    def waiting(self, durable: str) -> int:
        """How many messages the durable consumer ``durable`` has not settled yet (0 for one never subscribed):
        what a producer holds back on (the IoT bridge of a serving process)."""
        with self._cond:
            c = self._consumers.get(durable)
            return c.owed if c is not None else 0

    def close(self) -> None:
        pass

    # -- internals (called with the lock held unless they take it) --

    def _oldest(self) -> int:
        while self._first < self._next and self._first not in self._log:
            self._first += 1
        return self._first

    def _drop(self, seq: int) -> None:
        self._log.pop(seq, None)
        self._unowed.pop(seq, None)

    def _enforce_limits(self) -> None:
        cutoff = time.monotonic() - self.max_age
        while self._unowed:
            seq = next(iter(self._unowed))
            if len(self._unowed) <= self.max_msgs and self._log[seq].at >= cutoff:
                break
            self._drop(seq)

    def _settle(self, durable: str, seq: int) -> None:
        with self._cond:
            c = self._consumers[durable]
            c.pending.pop(seq, None)
            msg = self._log.get(seq)
            if msg is not None and durable in msg.owed:
                msg.owed.discard(durable)
                c.owed -= 1
                if not msg.owed:
                    self._drop(seq)

    def _collect(self, durable: str, batch: int, ack_wait: float) -> list[Delivery]:
        """Called with the lock held: due redeliveries first, then new messages."""
        c = self._consumers[durable]
        now = time.monotonic()
        out: list[Delivery] = []
        candidates = sorted(p.seq for p in c.pending.values() if p.due <= now)
        c.cursor = max(c.cursor, self._oldest())
        while c.cursor < self._next and len(candidates) < batch:
            seq = c.cursor
            c.cursor += 1
            msg = self._log.get(seq)
            if msg is not None and durable in msg.owed:
                c.pending[seq] = _Pending(seq, 0, 0.0)
                candidates.append(seq)
        for seq in candidates:
            if len(out) >= batch:
                break
            p = c.pending[seq]
            msg = self._log[seq]
            p.attempt += 1
            if p.attempt > self.max_deliver:
                reason = f"not acknowledged after {self.max_deliver} deliveries"
            else:
                try:
                    event = Event.decode(msg.raw)
                except ValueError as exc:
                    reason = f"malformed event: {exc}"
                else:
                    p.due = now + ack_wait
                    out.append(_MemDelivery(self, durable, seq, event, p.attempt))
                    continue
            self._dlq.append(DeadLetter(msg.subject, msg.raw, reason, durable))
            self._settle(durable, seq)
        self._enforce_limits()
        return out
