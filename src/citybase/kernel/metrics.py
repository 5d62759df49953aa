"""The platform's metrics in the Prometheus text format: requests, latency, consumers, queue lag, timers,
the outbox depth.

Processes: one serving process keeps its metrics in memory. Several processes of one deployment
(``serve --workers N``, ``citybase worker``) set ``PROMETHEUS_MULTIPROC_DIR`` to one empty folder before
they start (prometheus-client reads it at import); each then writes its samples there and ``GET /metrics``
on any of them answers for all of them, counters and histograms summed. Gauges read from the database
at scrape time (the outbox depth) are the same from every process, so they are callbacks, not samples."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

# The samples of this process. In multiprocess mode they go to the shared folder instead and this
# registry only describes them.
REGISTRY = CollectorRegistry(auto_describe=True)
if not MULTIPROCESS:
    ProcessCollector(registry=REGISTRY)
    PlatformCollector(registry=REGISTRY)

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LAG = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0)

HTTP_REQUESTS = Counter("citybase_http_requests", "HTTP requests answered, by method, route template and status",
                        ["method", "route", "status"], registry=REGISTRY)
HTTP_LATENCY = Histogram("citybase_http_request_duration_seconds", "Time to answer an HTTP request",
                         ["method", "route"], buckets=_LATENCY, registry=REGISTRY)
CONSUMER_HANDLED = Counter("citybase_consumer_handled", "Events a durable consumer handled and acknowledged",
                           ["consumer"], registry=REGISTRY)
CONSUMER_FAILED = Counter("citybase_consumer_failed", "Events a consumer failed on (retried or dead-lettered)",
                          ["consumer", "outcome"], registry=REGISTRY)
QUEUE_LAG = Histogram("citybase_consumer_lag_seconds", "From an event's publication to its handling by a consumer",
                      ["consumer"], buckets=_LAG, registry=REGISTRY)
TIMER_RUNS = Counter("citybase_timer_runs", "Runs of a timer by its lease holder, by outcome (ok, failed)",
                     ["timer", "outcome"], registry=REGISTRY)

UNMATCHED = "<unmatched>"  # the route label of a request no route matched (keeps the label set bounded)


class _Callbacks(Collector):
    """Gauges whose value a function computes at scrape time (e.g. a count in the database)."""

    def __init__(self) -> None:
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}

    def collect(self) -> Iterable[Metric]:
        for name, (doc, fn) in sorted(self.gauges.items()):
            family = GaugeMetricFamily(name, doc)
            try:
                family.add_metric([], float(fn()))
            except Exception:  # noqa: BLE001 - a scrape must answer even when one source is down; the gauge is left out
                continue
            yield family


_CALLBACKS = _Callbacks()
REGISTRY.register(_CALLBACKS)


def set_gauge_callback(name: str, doc: str, fn: Callable[[], float]) -> None:
    """Report ``fn()`` as the gauge ``name`` at every scrape (replacing an earlier function of that name)."""
    _CALLBACKS.gauges[name] = (doc, fn)


def set_outbox_depth(fn: Callable[[], float]) -> None:
    """Report ``fn()`` — events written but not yet relayed to the bus — as ``citybase_outbox_depth``."""
    set_gauge_callback("citybase_outbox_depth", "Events in the outbox not yet relayed to the bus", fn)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered HTTP request and its latency."""
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_LATENCY.labels(method, route).observe(seconds)


def consumer_handled(consumer: str, lag_seconds: float | None = None) -> None:
    """Count one event the consumer handled; ``lag_seconds`` is the time since the event was published."""
    CONSUMER_HANDLED.labels(consumer).inc()
    if lag_seconds is not None:
        QUEUE_LAG.labels(consumer).observe(max(0.0, lag_seconds))


def consumer_failed(consumer: str, outcome: str = "retried") -> None:
    """Count one event the consumer failed on: ``retried`` (nak) or ``dead_lettered``."""
    CONSUMER_FAILED.labels(consumer, outcome).inc()


def timer_ran(timer: str, ok: bool = True) -> None:
    """Count one run of a timer."""
    TIMER_RUNS.labels(timer, "ok" if ok else "failed").inc()


def render() -> bytes:
    """The current metrics in the Prometheus text format (of every process in multiprocess mode)."""
    if not MULTIPROCESS:
        return generate_latest(REGISTRY)
    scrape = CollectorRegistry()
    multiprocess.MultiProcessCollector(scrape)
    scrape.register(_CALLBACKS)
    return generate_latest(scrape)


def reset_multiprocess_dir(path: Path) -> None:
    """Empty (or create) the folder for multiprocess metrics; call once before a deployment's processes start."""
    path.mkdir(parents=True, exist_ok=True)
    for f in path.glob("*.db"):
        f.unlink()
