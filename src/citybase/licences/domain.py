"""The licences domain (电子证照) as the platform sees it: its tables, router, typed events and commands."""

from __future__ import annotations

from typing import Any

from citybase.kernel.domain import Domain
from citybase.licences.events import EVENTS


def _routers() -> list[Any]:
    from citybase.licences.router import router

    return [router]


def _cli() -> Any:
    from citybase.licences.cli import app

    return app


DOMAIN = Domain(
    name="licences",
    title="Electronic licences (电子证照)",
    depends=("registry",),  # holders are the registry's persons and legal entities, issuers its departments
    models=("citybase.licences.models",),
    routers=_routers,
    events=EVENTS,
    cli=_cli,
)
