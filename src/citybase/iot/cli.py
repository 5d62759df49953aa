"""`citybase iot …`: the device types, provisioning from a CSV or JSON file, the MQTT bridge."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="城域物联网: devices, the MQTT bridge, readings", no_args_is_help=True)


def _session():
    from citybase.core.settings import load_settings
    from citybase.storage.db import make_engine, make_sessionmaker

    engine = make_engine(load_settings().database_url)
    return engine, make_sessionmaker(engine)


@app.command("types")
def types() -> None:
    """The device types: Smart Data Models type, attributes with units and ranges, rules."""
    from citybase.iot.types import DEVICE_TYPES

    for t in DEVICE_TYPES.values():
        attrs = ", ".join(f"{a.name}[{a.unit or '|'.join(a.values)}]" for a in t.attributes)
        typer.echo(f"{t.code:<11} {t.sdm_type:<20} {t.title}（{t.department}，每 {t.interval:g} 秒）: {attrs}")


def _rows(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        return data if isinstance(data, list) else [data]
    return list(csv.DictReader(text.splitlines()))


@app.command("import")
def import_devices(path: Annotated[Path, typer.Argument(help="a CSV (device_id,type,lon,lat[,model,name,department,secret]) or a JSON list")],
                   secrets_out: Annotated[Path | None, typer.Option("--secrets", help="write device_id,secret here (mode 0600)")] = None,
                   batch: int = 1000) -> None:
    """Provision devices in bulk: each located in its grid and made a twin entity; secrets shown once."""
    from rich.progress import Progress

    from citybase.core.errors import CitybaseError
    from citybase.iot import service

    rows = _rows(path)
    engine, sessions = _session()
    made: list[tuple[str, str]] = []
    try:
        with Progress() as progress:
            task = progress.add_task("provisioning", total=len(rows))
            for i in range(0, len(rows), batch):
                chunk = rows[i:i + batch]
                devices = [service.NewDevice(device_id=str(r["device_id"]), type_code=str(r["type"]), lon=float(r["lon"]),
                                             lat=float(r["lat"]), model=str(r.get("model") or ""),
                                             name=str(r.get("name") or ""), department=r.get("department") or None,
                                             secret=r.get("secret") or None) for r in chunk]
                with sessions() as session:
                    out = service.provision(session=session, devices=devices)
                    session.commit()
                made.extend((d.device_id, s) for d, s in out)
                progress.advance(task, len(chunk))
    except (CitybaseError, KeyError, ValueError) as exc:
        detail = getattr(exc, "detail", None) or str(exc)
        typer.echo(f"refused at device {len(made) + 1}: {detail}", err=True)
        raise typer.Exit(2) from None
    if secrets_out:
        secrets_out.touch(mode=0o600)
        with secrets_out.open("w", encoding="utf-8") as f:
            f.write("device_id,secret\n")
            f.writelines(f"{d},{s}\n" for d, s in made)
        typer.echo(f"{len(made)} devices provisioned; their secrets are in {secrets_out}")
    else:
        typer.echo(f"{len(made)} devices provisioned (secrets not kept: pass --secrets FILE)", err=not made)
    sys.stdout.flush()


@app.command("bridge")
def bridge(name: Annotated[str | None, typer.Option(help="this bridge's name (default CITYBASE_IOT_BRIDGE_NAME)")] = None,
           retire: Annotated[bool, typer.Option(help="take this bridge's name out of service for good")] = False) -> None:
    """Carry the devices' MQTT messages (citybase/iot/<device>/up, QoS 1) to the bus for the ingest workers;
    a message is acknowledged to the broker only once the bus has stored it. SIGTERM or Ctrl+C stops."""
    import signal
    import threading

    from citybase.bus import connect
    from citybase.core.settings import load_settings
    from citybase.iot.bridge import retire_bridge, run_bridge
    from citybase.iot.mqtturl import redact
    from citybase.iot.settings import iot_settings

    settings, iot = load_settings(), iot_settings()
    if not iot.mqtt_url:
        typer.echo("set CITYBASE_IOT_MQTT_URL (e.g. mqtt://127.0.0.1:1883): the bridge needs the devices' broker", err=True)
        raise typer.Exit(2)
    if settings.bus_url.startswith("memory:"):
        typer.echo("note: with memory:// the bridge's bus is its own; use CITYBASE_BUS_URL=nats://… beside the workers",
                   err=True)
    bus = connect(settings.bus_url)
    halt = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: halt.set())
    who = name or iot.bridge_name
    try:
        if retire:
            done = retire_bridge(iot.mqtt_url, bus, who, halt)
            typer.echo(f"bridge {who} retired" if done else f"bridge {who}: retiring stopped before the end")
            return
        typer.echo(f"citybase iot bridge {who}: {redact(iot.mqtt_url)} → {settings.bus_url.split('?')[0]} "
                   "(SIGTERM or Ctrl+C stops)")
        b = run_bridge(iot.mqtt_url, bus, who, halt)
        typer.echo(f"bridge {who} stopped: {b.stats}")
    finally:
        bus.close()
