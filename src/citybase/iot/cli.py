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
