"""``citybase simulate``: the simulator's command for the ``citybase`` CLI (mount with
``app.command("simulate")(simulate_cli.simulate)``); the same as ``python -m citybase.iot.simulator``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from citybase.iot import simulator


def simulate(
    devices: Annotated[int, typer.Option(help="Devices to plan when no --tokens file is given.")] = 100,
    tokens: Annotated[Path | None, typer.Option(help="Provisioned devices: JSON, JSON lines or CSV "
                                                     "(id, type, token, lon, lat).")] = None,
    mqtt: Annotated[str | None, typer.Option(help="Publish to this broker, e.g. mqtt://127.0.0.1:1883.")] = None,
    http: Annotated[str | None, typer.Option(help="Post to this citybase server, e.g. http://127.0.0.1:8000.")] = None,
    topic_prefix: Annotated[str, typer.Option(help="MQTT topics are <prefix>/<device id>/up.")] = "citybase/iot",
    batch: Annotated[int, typer.Option(help="Messages per HTTP post.")] = 200,
    rate: Annotated[float | None, typer.Option(help="At most this many messages per second.")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    seed: Annotated[int, typer.Option(help="The same seed gives the same readings.")] = 1,
    district: Annotated[str, typer.Option(help="GB/T 2260 code in planned device ids.")] = "310104",
    time_scale: Annotated[float, typer.Option(help="Simulated seconds per wall second.")] = 1.0,
    backfill: Annotated[float, typer.Option(help="Start the simulated clock this many hours ago.")] = 0.0,
    fast: Annotated[bool, typer.Option(help="Bench: not in real time, as fast as possible (or --rate).")] = False,
    dropout: Annotated[float, typer.Option(help="Share of reports a device skips.")] = 0.01,
) -> None:
    """Simulated IoT devices sending readings (模拟物联网设备上报数据)."""
    if bool(mqtt) == bool(http):
        raise typer.BadParameter("give exactly one of --mqtt and --http")
    simulator.simulate(devices=devices, tokens=tokens, mqtt=mqtt, http=http, topic_prefix=topic_prefix, batch=batch,
                       rate=rate, duration=duration, seed=seed, district=district, time_scale=time_scale,
                       backfill=backfill, fast=fast, dropout=dropout, say=typer.echo)
