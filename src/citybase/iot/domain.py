"""The IoT domain (城域物联网) as the platform sees it: its tables, the API under /api/v1/iot and the device
pages, the ingest workers, the feed poster and the silence sweep, its caches, events and commands
(`citybase iot …`)."""

from __future__ import annotations

from typing import Any

from citybase.iot import workers
from citybase.iot.events import EVENTS, FEED_PREFIX, INGEST
from citybase.iot.settings import IotSettings, iot_settings
from citybase.kernel.consumers import exponential
from citybase.kernel.domain import ConsumerSpec, Domain, TimerSpec

INGEST_BATCH = 4  # bus events per ingest transaction: each the bridge's group of up to 250 messages


def _routers() -> list[Any]:
    from citybase.iot.router import router

    return [router]


def _cli() -> Any:
    from citybase.iot.cli import app

    return app


DOMAIN = Domain(
    name="iot",
    title="城域物联网 — devices, readings, rules and alarms",
    depends=("security", "geo", "registry", "ops", "twin"),  # located in grids, owned by departments, alarms → incidents, in the twin
    models=("citybase.iot.models",),
    routers=_routers,
    events=EVENTS,
    consumers=(
        ConsumerSpec("iot-ingest", INGEST, workers.ingest, batch=INGEST_BATCH, ack_wait=60.0),
        ConsumerSpec("iot-feeds", FEED_PREFIX + ".*", workers.feed, ack_wait=60.0, retry_delay=exponential(1.0, 60.0)),
    ),
    timers=(TimerSpec("iot-silence", lambda: iot_settings().silence_interval, workers.sweep),),
    settings=IotSettings,
    caches={"iot.devices": workers.forget_devices, "iot.feeds": workers.forget_feeds},
    cli=_cli,
)
