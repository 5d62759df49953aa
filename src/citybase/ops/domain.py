"""The ops domain (一网统管, the closed incident loop) as the platform sees it: one descriptor that names its
sub-packages' tables, routers, roles and typed events. The app, the CLI and the workers loop over it."""

from __future__ import annotations

from typing import Any

from citybase.kernel.domain import ConsumerSpec, Domain, TimerSpec
from citybase.ops.settings import OpsSettings, ops_settings

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


OPS_EVENTS = "citybase.ops.>"
ALARMS = "citybase.iot.alarm.>"


def _alarm(session: Any, delivery: Any, runtime: Any) -> None:
    """ops-alarms: a raised IoT alarm becomes an incident, a cleared one a note on it (``intake.alarms``)."""
    from citybase.ops.intake.alarms import handle_alarm

    handle_alarm(session, delivery.event, runtime.classifier)


def _alarm_ignored(session: Any, event: Any, runtime: Any) -> bool:
    """ops-alarms has nothing to do with alarms that open no incident, nor with subjects but raised/cleared."""
    from citybase.ops.intake.alarms import ignores

    return ignores(event)


def _webhooks(session: Any, delivery: Any, runtime: Any) -> None:
    """ops-webhooks: every ops event POSTed, signed, to the subscribed department systems."""
    from citybase.ops.notifications.service import deliver_webhooks

    if not deliver_webhooks(session, delivery.event, delivery.attempt, max_attempts=runtime.bus.max_deliver):
        session.commit()  # keep the log of this try, then ask for a retry
        raise RuntimeError(f"webhook delivery of {delivery.event.id} failed (attempt {delivery.attempt})")


def _supervise(runtime: Any) -> None:
    """ops-supervision: 督办 for overdue work (its events through the outbox), then expired intake keys."""
    from citybase.bus import Context
    from citybase.kernel import idempotency, outbox
    from citybase.ops.workflow import service

    with runtime.sessions() as session:
        outbox.bind_context(session, Context(user_id=None))
        service.supervise_overdue(session=session)
        session.commit()
        idempotency.prune(session=session)  # intake keys older than 24 h
        session.commit()


def _forget_webhooks(runtime: Any) -> None:
    from citybase.ops.notifications.service import forget_webhooks

    forget_webhooks()


def _forget_catalogue(runtime: Any) -> None:
    from citybase.ops.catalogue.service import forget_rules

    forget_rules()


def _reload_classifier(runtime: Any) -> None:
    from citybase.ops.classification.training import load_classifier

    runtime.state.classifier = load_classifier(runtime.settings.data_dir)


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
    consumers=(ConsumerSpec("ops-alarms", ALARMS, _alarm, skip=_alarm_ignored),
               ConsumerSpec("ops-webhooks", OPS_EVENTS, _webhooks, ack_wait=60.0)),
    timers=(TimerSpec("ops-supervision", lambda: ops_settings().supervision_interval, _supervise),),
    caches={"ops.webhooks": _forget_webhooks, "ops.catalogue": _forget_catalogue,
            "ops.classifier": _reload_classifier},
)
