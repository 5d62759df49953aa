"""The demo's devices: provisioned once (a second run finds them and knows their secrets), and a simulated
rain over the demo's flood points raises alarms through the real ingest and clears them when it drains."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citybase.demo.iot import ensure_devices
from citybase.iot import service
from citybase.iot.models import Alarm, Device
from citybase.iot.simulator import Fleet
from citybase.storage.db import make_sessionmaker


@pytest.mark.parametrize("empty_db", ["sqlite"], indirect=True)
def test_demo_devices_are_provisioned_once_and_rain_raises_and_clears_flood_alarms(empty_db, tmp_path):
    from citybase.demo.generator import generate
    from citybase.geo.service import reset_caches
    from citybase.storage.migrate import upgrade

    upgrade(empty_db.engine)
    generate(empty_db.engine, size="small", seed=3)
    reset_caches()
    service.DIRECTORY.forget()
    specs = ensure_devices(empty_db.engine, tmp_path, n=300, seed=5)
    again = ensure_devices(empty_db.engine, tmp_path, n=300, seed=5)
    assert again == specs
    with Session(empty_db.engine) as s:
        assert s.scalar(select(func.count()).select_from(Device)) == 300
        located = s.scalar(select(func.count()).select_from(Device).where(Device.grid_code.is_not(None)))
    assert located == 300  # every planned device inside the district's grids
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    fleet = Fleet(specs, seed=5, start=start)
    floods = [s.device_id for s in specs if s.type_code == "flood"]
    fleet.rain(floods, start=start + timedelta(minutes=20), minutes=30)
    sessions = make_sessionmaker(empty_db.engine)
    refused = 0
    until = start + timedelta(minutes=110)
    batch = fleet.tick(until)
    for i in range(0, len(batch), 500):
        with sessions() as s:
            r = service.ingest(session=s, messages=[service.Message(device=d, payload=m, via="http")
                                                    for d, m in batch[i:i + 500]])
            s.commit()
        refused += r.refused
    assert refused == 0
    with Session(empty_db.engine) as s:
        alarms = s.scalars(select(Alarm).where(Alarm.rule == "level_high")).all()
    assert {a.device_pk for a in alarms} and all(a.state == "cleared" for a in alarms)
    assert len({a.device_pk for a in alarms}) == len(alarms)  # one alarm per flood point: no flapping
