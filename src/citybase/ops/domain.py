"""The ops domain (一网统管, the closed incident loop) as the platform sees it: one descriptor that names its
sub-packages' tables, routers, roles and typed events. The app, the CLI and the workers loop over it."""

from __future__ import annotations

from typing import Any

from citybase.kernel.domain import Domain
from citybase.ops.settings import OpsSettings

SUBPACKAGES = ("catalogue", "intake", "workflow", "classification", "notifications", "metrics")


def _routers() -> list[Any]:
    from citybase.ops.catalogue.router import router as catalogue
    from citybase.ops.classification.router import router as classification
    from citybase.ops.intake.router import router as intake
    from citybase.ops.metrics.router import router as metrics
    from citybase.ops.notifications.router import router as notifications
    from citybase.ops.workflow.router import router as workflow

    return [catalogue, intake, workflow, classification, notifications, metrics]


def _root_routers() -> list[Any]:
    from citybase.ops.intake.open311 import router as open311

    return [open311]


def _events() -> dict[str, type]:
    from citybase.ops.notifications.events import EVENTS as notifications
    from citybase.ops.workflow.events import EVENTS as workflow

    return {**workflow, **notifications}


DOMAIN = Domain(
    name="ops",
    title="一网统管 — the closed incident loop",
    depends=("geo", "registry"),
    models=[f"citybase.ops.{p}.models" for p in SUBPACKAGES],
    routers=_routers,
    root_routers=_root_routers,
    roles={
        "dispatcher": "城运中心派单员: registers, dispatches, merges, closes; takes hotline calls",
        "handler": "a department's handler: accepts, returns, completes its tasks; calls the reporter back",
        "grid_inspector": "网格员: reports with a photo and verifies on site",
        "citizen": "reports (Open311, the report page) and rates the outcome",
        "analyst": "reads the metrics and hotspots",
    },
    events=_events(),
    settings=OpsSettings,
)
