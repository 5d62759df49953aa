"""The background work of a list of domains, started and stopped in one place: the outbox relay, one durable
``Consumer`` per ``ConsumerSpec``, one leased ``Timer`` per ``TimerSpec``, and the cache listener.

The app's lifespan uses it (the embedded default: everything in the serving process), and so does
``citybase worker`` (everything but HTTP). With several serving processes and a worker, each process runs a
relay and a cache listener; consumers and timers run where ``start(..., work=True)`` says (the worker, or
every process: consumers are idempotent on the event id and a timer runs only in its lease holder).

Caches: a process keeps some copies in memory (the geo indexes, the webhook list, the classifier…). A change
calls :func:`invalidate` in its transaction, which queues ``citybase.kernel.cache.invalidated`` through the
outbox; every process's listener (a durable subscription named for that process alone) receives it and runs
the handler the owning domain declared in ``Domain.caches``."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from citybase.bus import Bus, Delivery
from citybase.bus.base import Context
from citybase.core.settings import Settings
from citybase.core.timeutil import utcnow
from citybase.kernel import logs, metrics, outbox, process
from citybase.kernel.consumers import BatchConsumer, Consumer
from citybase.kernel.domain import ConsumerSpec, Domain, TimerSpec
from citybase.kernel.outbox import Relay
from citybase.kernel.timers import Timer

log = logging.getLogger("citybase.kernel.runtime")

CACHE_INVALIDATED = "citybase.kernel.cache.invalidated"


def invalidate(session: Session, cache: str) -> None:
    """Tell every process (this one too) to drop its copy of ``cache`` once this transaction commits.
    Queues the event in the session's transaction; does not commit."""
    outbox.queue(session, CACHE_INVALIDATED, {"cache": cache})


@dataclass
class Runtime:
    """What background work needs: the database, the bus, the settings, and the process's shared state
    (``app.state`` in a serving process: ``state.classifier`` is the one the requests use)."""

    engine: Engine
    bus: Bus
    sessions: sessionmaker[Session]
    settings: Settings
    domains: Sequence[Domain]
    state: Any = field(default_factory=SimpleNamespace)
    relay: Relay | None = None
    consumers: list[Consumer] = field(default_factory=list)
    timers: list[Timer] = field(default_factory=list)
    cache_listener: CacheListener | None = None

    @property
    def classifier(self) -> Any:
        """The classifier this process uses now (reloaded when a retrained one is announced)."""
        return getattr(self.state, "classifier", None)

    def threads(self) -> list[threading.Thread]:
        """Every thread this runtime started."""
        out: list[threading.Thread] = [*self.consumers, *self.timers]
        if self.relay is not None:
            out.append(self.relay)
        if self.cache_listener is not None:
            out.append(self.cache_listener)
        return out


class _Observed(Delivery):
    """A delivery that counts how it was settled (handled, retried, dead-lettered) in the metrics."""

    def __init__(self, inner: Delivery, consumer: str) -> None:
        self.inner, self.consumer = inner, consumer
        self.event, self.attempt = inner.event, inner.attempt

    def ack(self) -> None:
        self.inner.ack()
        self.note_acked()

    def note_acked(self) -> None:
        """Count an ack made for it elsewhere (a batch acked together)."""
        metrics.consumer_handled(self.consumer, _age(self.event.time))

    def nak(self, delay: float = 0.0) -> None:
        self.inner.nak(delay)
        metrics.consumer_failed(self.consumer, "retried")

    def reject(self, reason: str) -> None:
        self.inner.reject(reason)
        metrics.consumer_failed(self.consumer, "dead_lettered")


def _age(iso: str) -> float | None:
    try:
        return (utcnow() - datetime.fromisoformat(iso)).total_seconds()
    except (TypeError, ValueError):
        return None


class DomainConsumer(Consumer):
    """A ``Consumer`` for a domain's ``ConsumerSpec``: handles with ``spec.handle(session, delivery, runtime)``,
    each event logged under its context id and counted in the metrics."""

    def __init__(self, spec: ConsumerSpec, runtime: Runtime) -> None:
        super().__init__(spec.name, runtime.bus, spec.subjects, runtime.sessions,
                         lambda session, delivery: spec.handle(session, delivery, runtime), ack_wait=spec.ack_wait,
                         retry_delay=spec.retry_delay,
                         skip=(lambda session, event: spec.skip(session, event, runtime)) if spec.skip else None)

    def process(self, delivery: Delivery) -> None:
        with logs.bound(context_id=delivery.event.context.id):
            super().process(_Observed(delivery, self.consumer))


class DomainBatchConsumer(BatchConsumer):
    """A ``BatchConsumer`` for a ``ConsumerSpec`` with ``batch``: ``spec.handle(session, deliveries, runtime)``."""

    def __init__(self, spec: ConsumerSpec, runtime: Runtime) -> None:
        super().__init__(spec.name, runtime.bus, spec.subjects, runtime.sessions,
                         lambda session, deliveries: spec.handle(session, deliveries, runtime), batch=spec.batch,
                         ack_wait=spec.ack_wait, retry_delay=spec.retry_delay)

    def process_batch(self, deliveries: list[Delivery]) -> None:
        super().process_batch([_Observed(d, self.consumer) for d in deliveries]
                              if not isinstance(deliveries[0], _Observed) else deliveries)


def consumer_of(spec: ConsumerSpec, runtime: Runtime) -> Consumer:
    """The consumer thread a spec asks for: per delivery, or in batches."""
    return DomainBatchConsumer(spec, runtime) if spec.batch else DomainConsumer(spec, runtime)


class DomainTimer(Timer):
    """A leased ``Timer`` for a domain's ``TimerSpec``: ``spec.run(runtime)`` in the lease holder, each run
    logged under a context id of its own and counted in ``citybase_timer_runs``."""

    def __init__(self, spec: TimerSpec, runtime: Runtime, **timer: Any) -> None:
        interval = spec.interval() if callable(spec.interval) else spec.interval
        super().__init__(spec.name, lambda: spec.run(runtime), engine=runtime.engine, interval=interval, **timer)

    def tick(self) -> bool:
        if not self.hold():
            return False
        with logs.bound(context_id=Context().id):
            try:
                self.fn()
            except Exception:
                metrics.timer_ran(self.lease, ok=False)
                raise
        metrics.timer_ran(self.lease, ok=True)
        self.runs += 1
        return True


class CacheListener(threading.Thread):
    """Drops this process's cached copies when any process announces a change (see the module doc).

    Its durable subscription is named for this process alone and follows ``CACHE_INVALIDATED``; events older
    than the listener (replayed to a new name) are skipped: the caches of a new process are fresh anyway."""

    def __init__(self, runtime: Runtime, handlers: dict[str, list[Callable[[Runtime], None]]]) -> None:
        super().__init__(name="citybase-cache-listener", daemon=True)
        self.runtime, self.handlers = runtime, handlers
        self.started_at = utcnow()
        self.durable = f"cache-{uuid.uuid4().hex[:16]}"
        self.sub = runtime.bus.subscribe(CACHE_INVALIDATED, durable=self.durable, ack_wait=30.0)
        self.stop_event = threading.Event()
        self.dropped = 0  # caches dropped since start

    def run_once(self, timeout: float = 0.5) -> int:
        """Handle one batch of announcements; returns how many were settled."""
        n = 0
        for d in self.sub.fetch(batch=50, timeout=timeout):
            n += 1
            try:
                fresh = datetime.fromisoformat(d.event.time) >= self.started_at
            except ValueError:
                fresh = True
            if fresh:
                self.drop(str(d.event.data.get("cache", "")))
            d.ack()
        return n

    def drop(self, cache: str) -> None:
        """Run the handlers of ``cache`` (or of every cache for ``*``)."""
        names = list(self.handlers) if cache == "*" else [cache]
        for name in names:
            for handler in self.handlers.get(name, ()):
                try:
                    handler(self.runtime)
                    self.dropped += 1
                    log.info("cache %s dropped", name)
                except Exception:  # noqa: BLE001 - a failed reload keeps the old copy; log and go on
                    log.exception("cache %s: dropping failed", name)

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - a broken connection must not end the listener
                log.exception("cache listener: fetch failed")
                self.stop_event.wait(2)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the current batch."""
        self.stop_event.set()
        if self.is_alive():
            self.join(timeout)
        try:
            self.sub.close()
        except Exception:  # noqa: BLE001 - the bus is away; nothing to keep
            log.debug("cache listener: closing the subscription failed", exc_info=True)


def cache_handlers(domains: Sequence[Domain]) -> dict[str, list[Callable[[Runtime], None]]]:
    """Every cache name the domains declare, with the handlers that drop it."""
    out: dict[str, list[Callable[[Runtime], None]]] = {}
    for dom in domains:
        for name, handler in dom.caches.items():
            out.setdefault(name, []).append(handler)
    return out


def warm_up(runtime: Runtime) -> None:
    """Run every domain's warm-up (building in-process indexes before the first request)."""
    for dom in runtime.domains:
        if dom.warm_up is not None:
            with runtime.sessions() as session:
                dom.warm_up(session=session, runtime=runtime)


def start(runtime: Runtime, *, relay: bool = True, work: bool = True, caches: bool = True) -> Runtime:
    """Start the relay, the cache listener, and (``work``) every domain's consumers and timers; returns the
    runtime with its threads. Subscriptions are opened before any thread starts, so a bus that is away
    fails here, at start."""
    if caches:
        runtime.cache_listener = CacheListener(runtime, cache_handlers(runtime.domains))
    if work:
        runtime.consumers = [consumer_of(spec, runtime) for dom in runtime.domains for spec in dom.consumers]
        runtime.timers = [DomainTimer(spec, runtime) for dom in runtime.domains for spec in dom.timers]
    if relay:
        if runtime.relay is None or runtime.relay.ident is not None:  # a relay thread runs once
            runtime.relay = Relay(runtime.engine, runtime.bus)
        metrics.set_outbox_depth(lambda: outbox.depth(runtime.engine))
    for t in runtime.threads():
        if t.ident is None:
            t.start()
    process.start_heap_trimmer()  # the resident memory follows what the process holds (kernel.process)
    log.info("runtime started: relay=%s, %d consumer(s), %d timer(s), cache listener=%s", relay,
             len(runtime.consumers), len(runtime.timers), caches)
    return runtime


def stop(runtime: Runtime, *, drain: bool = True) -> None:
    """Stop the consumers and timers (releasing their leases), the cache listener, then the relay, and
    publish what is left in the outbox (``drain``); never raises for a bus that is away."""
    for c in runtime.consumers:
        c.stop()
    for c in runtime.consumers:
        if c.is_alive():
            c.join(5)
    for t in runtime.timers:
        t.stop()
    if runtime.cache_listener is not None:
        runtime.cache_listener.stop()
    if runtime.relay is not None:
        runtime.relay.stop()
        if drain:
            try:
                runtime.relay.drain()  # what this process committed last goes out before exit
            except Exception:  # noqa: BLE001 - the bus is down: the events wait in the outbox for the next relay
                log.warning("events left in the outbox at shutdown; the next relay publishes them")

