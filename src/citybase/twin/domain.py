"""The twin domain (数字孪生) as the platform sees it: its tables, the NGSI-LD API mounted at /ngsi-ld/v1
(entities, subscriptions, context source registrations), its consumers (subscriptions, entity and to
registrations, matched and notified, the city's incidents projected), its timers, settings, events and commands (`citybase twin …`)."""

from __future__ import annotations

from typing import Any

from citybase.kernel.domain import ConsumerSpec, Domain, TimerSpec
from citybase.twin.events import EVENTS
from citybase.twin.settings import TwinSettings, twin_settings
from citybase.twin.sources import wiring as sources
from citybase.twin.sources.events import EVENTS as SOURCE_EVENTS
from citybase.twin.subscriptions import wiring as subscriptions


def _root_routers() -> list[Any]:
    from citybase.twin.router import router
    from citybase.twin.sources.router import router as registrations

    return [*subscriptions.routers(), registrations, router]  # the twin's router last: its last route takes every other path


def _cli() -> Any:
    from citybase.twin.cli import app

    return app


def _prune(runtime: Any) -> None:
    """twin-retention: the history's partitions kept two months ahead (PostgreSQL), and history older than
    CITYBASE_TWIN_HISTORY_DAYS deleted (nothing when 0)."""
    from datetime import UTC, datetime, timedelta

    from citybase.twin.repository import TwinRepository

    now = datetime.now(UTC)
    with runtime.sessions() as session:
        repo = TwinRepository(session)
        repo.add_partitions(now)
        days = twin_settings().history_days
        if days:
            repo.prune_history(now - timedelta(days=days))
        session.commit()


def _city_incident(session: Any, delivery: Any, runtime: Any) -> None:
    """twin-city-incidents: a step of the incident loop upserts the incident's IssueReporting entity."""
    from citybase.twin.city import on_incident_event

    on_incident_event(session, delivery, runtime)


def _forget_registrations(runtime: Any) -> None:
    from citybase.twin.caching import REGISTRATIONS

    REGISTRATIONS.forget()


def _forget_contexts(runtime: Any) -> None:
    store = getattr(runtime.state, "twin_contexts", None)
    if store is not None:
        store.forget()


DOMAIN = Domain(
    name="twin",
    title="数字孪生 — the city's live twin (NGSI-LD)",
    depends=("security", "geo", "registry", "ops"),  # the city projected into the twin (twin.city)
    models=("citybase.twin.models", "citybase.twin.sources.models", *subscriptions.MODELS),
    root_routers=_root_routers,
    events={**EVENTS, **SOURCE_EVENTS, **subscriptions.EVENTS},
    settings=TwinSettings,
    consumers=(ConsumerSpec("twin-city-incidents", "citybase.ops.incident.*", _city_incident), *subscriptions.CONSUMERS,
               *sources.CONSUMERS),
    timers=(TimerSpec("twin-retention", 3600.0, _prune), *subscriptions.TIMERS, *sources.TIMERS),
    caches={"twin.contexts": _forget_contexts, "twin.sources": _forget_registrations, **subscriptions.CACHES},
    cli=_cli,
)
