"""The one descriptor every domain declares, and the discovery the app, the CLI and the workers loop over.

A domain package ``citybase.<name>`` has a module ``domain.py`` with ``DOMAIN = Domain(...)``; outside
packages declare an entry point in the ``citybase.domains`` group. Adding a domain touches no kernel file."""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable subscription of the domain: ``handle(session, delivery, runtime)`` runs in one transaction."""

    name: str  # the durable consumer name, unique in the deployment
    subjects: str  # NATS-style pattern, e.g. ``citybase.iot.alarm.*``
    handle: Callable[..., None]
    ack_wait: float = 30.0
    retry_delay: Callable[[int], float] | None = None  # seconds before a failed delivery comes back (attempt -> s)
    # skip(session, event, runtime) -> True when handle would do nothing with the event (a read-only check):
    # such a delivery is acked without a write transaction or a processed record (see kernel.consumers)
    skip: Callable[..., bool] | None = None
    # batch > 0: ``handle(session, deliveries, runtime)`` takes up to ``batch`` deliveries in one transaction, with
    # no processed record per event (the handler itself is idempotent); see kernel.consumers.BatchConsumer
    batch: int = 0


@dataclass(frozen=True)
class TimerSpec:
    """Work done every ``interval`` seconds by exactly one process of the deployment (the lease holder)."""

    name: str
    interval: float | Callable[[], float]  # seconds, or a function reading them from the settings at start
    run: Callable[..., None]  # run(runtime)


@dataclass(frozen=True)
class Domain:
    """What a domain brings to the platform; every field is optional but ``name`` and ``title``."""

    name: str
    title: str
    depends: Sequence[str] = ()  # domains whose services or events this one uses
    models: Sequence[str] = ()  # modules whose import registers the domain's tables
    routers: Callable[[], Sequence[Any]] | None = None  # APIRouters mounted under /api/v1
    root_routers: Callable[[], Sequence[Any]] | None = None  # APIRouters mounted at / (standard APIs, pages)
    roles: Mapping[str, str] = field(default_factory=dict)  # role name -> what it may do
    consumers: Sequence[ConsumerSpec] = ()
    timers: Sequence[TimerSpec] = ()
    settings: type | None = None  # a pydantic-settings model with the domain's CITYBASE_* variables
    warm_up: Callable[..., None] | None = None  # warm_up(session=..., runtime=...) before serving
    events: Mapping[str, type] = field(default_factory=dict)  # subject (pattern) -> pydantic schema
    caches: Mapping[str, Callable[..., None]] = field(default_factory=dict)  # cache name -> drop(runtime)
    cli: Callable[[], Any] | None = None  # a typer.Typer with the domain's commands, mounted as `citybase <name>`


def _load_module_domain(module: str) -> Domain | None:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return None
        raise
    dom = getattr(mod, "DOMAIN", None)
    if not isinstance(dom, Domain):
        raise TypeError(f"{module}.DOMAIN must be a citybase.kernel.domain.Domain")
    return dom


INFRASTRUCTURE = frozenset({"core", "storage", "bus", "kernel", "api", "web", "demo"})  # packages that are not domains


@cache
def domains() -> tuple[Domain, ...]:
    """Every installed domain, dependencies before dependants (citybase's own packages, then entry points)."""
    import citybase

    found: dict[str, Domain] = {}
    for info in pkgutil.iter_modules(citybase.__path__):
        if info.ispkg and info.name not in INFRASTRUCTURE:
            dom = _load_module_domain(f"citybase.{info.name}.domain")
            if dom is not None:
                found[dom.name] = dom
    for ep in importlib.metadata.entry_points(group="citybase.domains"):
        dom = ep.load()
        if not isinstance(dom, Domain):
            raise TypeError(f"entry point {ep.name} must name a citybase.kernel.domain.Domain")
        found[dom.name] = dom
    return tuple(_ordered(found))


def _ordered(found: Mapping[str, Domain]) -> list[Domain]:
    out: list[Domain] = []
    seen: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in seen:
            return
        if name in path:
            raise ValueError(f"domains depend on each other in a cycle: {' -> '.join(path + (name,))}")
        if name not in found:
            raise ValueError(f"domain {path[-1]!r} depends on {name!r}, which is not installed")
        for dep in found[name].depends:
            visit(dep, path + (name,))
        seen.add(name)
        out.append(found[name])

    for name in sorted(found):
        visit(name, ())
    return out


KERNEL_MODELS = ("citybase.kernel.models", "citybase.kernel.idempotency", "citybase.kernel.leases")  # the kernel's own tables


def load_models() -> None:
    """Import the kernel's and every domain's models, so the shared metadata knows every table (foreign
    keys resolve)."""
    for module in KERNEL_MODELS:
        importlib.import_module(module)
    for dom in domains():
        for module in dom.models:
            importlib.import_module(module)
