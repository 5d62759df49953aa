"""The twin domain (数字孪生) as the platform sees it: its tables, the NGSI-LD API mounted at /ngsi-ld/v1,
its settings, its events and its command (`citybase twin contexts load`)."""

from __future__ import annotations

from typing import Any

from citybase.kernel.domain import Domain, TimerSpec
from citybase.twin.events import EVENTS
from citybase.twin.settings import TwinSettings, twin_settings
from citybase.twin.subscriptions import wiring as subscriptions


def _root_routers() -> list[Any]:
    from citybase.twin.router import router

    return [*subscriptions.routers(), router]  # before the twin's router: its last route takes every other path


def _cli() -> Any:
    from citybase.twin.cli import app

    return app


def _prune(runtime: Any) -> None:
    """twin-retention: history older than CITYBASE_TWIN_HISTORY_DAYS deleted (nothing when 0)."""
    from datetime import UTC, datetime, timedelta

    from citybase.twin.repository import TwinRepository

    days = twin_settings().history_days
    if not days:
        return
    with runtime.sessions() as session:
        TwinRepository(session).prune_history(datetime.now(UTC) - timedelta(days=days))
        session.commit()


def _forget_contexts(runtime: Any) -> None:
    store = getattr(runtime.state, "twin_contexts", None)
    if store is not None:
        store.forget()


DOMAIN = Domain(
    name="twin",
    title="数字孪生 — the city's live twin (NGSI-LD)",
    depends=("security",),
    models=("citybase.twin.models", *subscriptions.MODELS),
    root_routers=_root_routers,
    events={**EVENTS, **subscriptions.EVENTS},
    settings=TwinSettings,
    consumers=subscriptions.CONSUMERS,
    timers=(TimerSpec("twin-retention", 3600.0, _prune), *subscriptions.TIMERS),
    caches={"twin.contexts": _forget_contexts, **subscriptions.CACHES},
    cli=_cli,
)
