"""The bus interface and the event envelope shared by every implementation."""

from __future__ import annotations

import json
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from citybase.core.timeutil import utcnow


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Context:
    """Who and what caused an event: its own id, the user, and the context it descends from."""

    id: str = field(default_factory=new_id)
    user_id: str | None = None
    parent_id: str | None = None

    def child(self) -> Context:
        """A new context caused by this one (same user)."""
        return Context(user_id=self.user_id, parent_id=self.id)


@dataclass(frozen=True)
class Event:
    """One published fact: subject like ``citybase.geo.area_created``, JSON data, context, UTC time."""

    subject: str
    data: dict[str, Any]
    context: Context
    id: str = field(default_factory=new_id)
    time: str = field(default_factory=lambda: utcnow().isoformat())

    def encode(self) -> bytes:
        # the envelope written out by hand: dataclasses.asdict deep-copies every value of the data first, which
        # cost more than the encoding itself for the IoT ingest's groups of messages
        c = self.context
        return json.dumps({"subject": self.subject, "data": self.data,
                           "context": {"id": c.id, "user_id": c.user_id, "parent_id": c.parent_id},
                           "id": self.id, "time": self.time}, ensure_ascii=False, separators=(",", ":")).encode()

    @staticmethod
    def decode(raw: bytes) -> Event:
        """Parse an envelope; raise ValueError with the reason if it is malformed."""
        try:
            obj = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise ValueError("envelope is not a JSON object")
        missing = [k for k in ("id", "subject", "data", "context", "time") if k not in obj]
        if missing:
            raise ValueError(f"envelope lacks {', '.join(missing)}")
        ctx = obj["context"]
        if not isinstance(ctx, dict) or "id" not in ctx:
            raise ValueError("context must be an object with an id")
        if not isinstance(obj["data"], dict):
            raise ValueError("data must be a JSON object")
        return Event(
            subject=str(obj["subject"]),
            data=obj["data"],
            context=Context(id=str(ctx["id"]), user_id=ctx.get("user_id"), parent_id=ctx.get("parent_id")),
            id=str(obj["id"]),
            time=str(obj["time"]),
        )


class PublishError(Exception):
    """A batch publication stopped: the first ``published`` events are stored; publish the rest again."""

    def __init__(self, published: int, cause: BaseException) -> None:
        super().__init__(f"{published} event(s) published, then {type(cause).__name__}: {cause}")
        self.published, self.cause = published, cause


@dataclass(frozen=True)
class DeadLetter:
    """A message kept aside: the raw bytes, where it came from and why it could not be handled."""

    subject: str
    raw: bytes
    reason: str
    consumer: str
    time: str = field(default_factory=lambda: utcnow().isoformat())


class Delivery(ABC):
    """One delivery of an event to a durable consumer; must be acked, nak'ed or rejected."""

    event: Event
    attempt: int

    @abstractmethod
    def ack(self) -> None:
        """Mark handled; it will not be delivered again to this consumer."""

    @abstractmethod
    def nak(self, delay: float = 0.0) -> None:
        """Ask for redelivery after ``delay`` seconds (now by default): the handler failed transiently."""

    @abstractmethod
    def reject(self, reason: str) -> None:
        """Give up on it: keep it in the dead-letter store with the reason, never redeliver."""


class Subscription(ABC):
    """A durable, pull-based consumer. Unacked deliveries come back after ack_wait seconds."""

    @abstractmethod
    def fetch(self, batch: int = 10, timeout: float = 1.0) -> list[Delivery]:
        """Up to ``batch`` deliveries, waiting at most ``timeout`` seconds for the first."""

    @abstractmethod
    def close(self) -> None:
        """Stop fetching; the durable position is kept for the next subscribe with the same name."""

    def ack_all(self, deliveries: Sequence[Delivery]) -> None:
        """Ack these deliveries of this subscription; a bus that can (JetStream) sends the acks together
        instead of one round trip after another."""
        for d in deliveries:
            d.ack()


class Bus(ABC):
    """Publish and durable subscribe. Subjects are dot-separated; ``*`` matches one token, ``>`` the rest."""

    max_deliver: int = 5

    @abstractmethod
    def publish(self, subject: str, data: dict[str, Any], *, context: Context | None = None) -> Event:
        """Publish durably and return the event (with its id and context)."""

    def publish_event(self, event: Event) -> None:
        """Publish an event made elsewhere (the outbox relay) keeping its id, time and context; a bus that can
        drop a re-publication of the same id (JetStream's ``Nats-Msg-Id``) does."""
        self.publish_raw(event.subject, event.encode())

    def publish_events(self, events: Sequence[Event]) -> None:
        """Publish events made elsewhere, in order (see :meth:`publish_event`). If the bus fails part way,
        raises :class:`PublishError` saying how many leading events are stored (the rest may be or not)."""
        for i, event in enumerate(events):
            try:
                self.publish_event(event)
            except Exception as exc:
                raise PublishError(i, exc) from exc

    @abstractmethod
    def publish_raw(self, subject: str, raw: bytes) -> None:
        """Put arbitrary bytes on a subject, as a foreign producer would (malformed input included)."""

    @abstractmethod
    def subscribe(self, subjects: str, durable: str, *, ack_wait: float = 30.0) -> Subscription:
        """Open (or resume) the durable consumer ``durable`` over ``subjects``."""

    @abstractmethod
    def dead_letters(self) -> list[DeadLetter]:
        """Every message kept aside, oldest first."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> Bus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS-style wildcard match: ``*`` one token, ``>`` one or more trailing tokens."""
    p, s = pattern.split("."), subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(s) > i
        if i >= len(s) or (tok != "*" and tok != s[i]):
            return False
    return len(p) == len(s)


def connect(url: str, **kwargs: Any) -> Bus:
    """A bus for ``memory://`` (in-process; ``?max_msgs=N&max_age=SECONDS`` bound what nobody consumes) or
    ``nats://host:port`` (JetStream; ``?deployment=NAME`` gives the deployment its own streams)."""
    if url.startswith("memory:"):
        from urllib.parse import parse_qsl, urlsplit

        from citybase.bus.memory import InProcessBus

        limits: dict[str, Any] = {}
        for key, value in parse_qsl(urlsplit(url).query):
            if key == "max_msgs":
                limits[key] = int(value)
            elif key == "max_age":
                limits[key] = float(value)
            else:
                raise ValueError(f"unknown option {key!r} in bus URL {url!r}: memory:// knows max_msgs and max_age")
        return InProcessBus(**{**limits, **kwargs})
    if url.startswith("nats:"):
        from citybase.bus.nats import NatsBus

        return NatsBus(url, **kwargs)
    raise ValueError(f"unknown bus URL {url!r}: use memory:// or nats://host:port")
