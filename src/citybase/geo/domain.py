"""The spatial base (时空底座) as the platform sees it: areas, buildings, addresses; its router, its warm-up
(the point → grid and address indexes), its caches and its events (none yet)."""

from __future__ import annotations

from typing import Any

from citybase.geo.events import EVENTS
from citybase.kernel.domain import Domain

INDEXES = "geo.indexes"  # the grid and address indexes each process keeps (dropped after an import)


def _warm_up(*, session: Any, runtime: Any = None) -> None:
    from citybase.geo.service import warm_up

    warm_up(session=session)


def _forget_indexes(runtime: Any) -> None:
    from citybase.geo.service import reset_caches

    reset_caches()


def _routers() -> list:
    from citybase.geo.router import router

    return [router]


DOMAIN = Domain(
    name="geo",
    title="Spatial base (时空底座)",
    models=("citybase.geo.models",),
    routers=_routers,
    warm_up=_warm_up,
    caches={INDEXES: _forget_indexes},
    events=EVENTS,
)
