"""The living demo moves incidents through the whole loop with the same services as the API."""

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citybase.bus.memory import InProcessBus
from citybase.core.timeutil import SHANGHAI
from citybase.demo.generator import generate
from citybase.demo.simulation import Simulation, hourly_weight
from citybase.kernel.outbox import Relay
from citybase.ops.workflow.models import Incident, TimelineEntry
from citybase.storage.migrate import upgrade
from tests.conftest import new_database


def test_reports_arrive_from_every_channel_and_work_moves_on(tmp_path):
    db = new_database("sqlite", tmp_path)
    upgrade(db.engine)
    generate(db.engine, size="small", seed=3)
    bus = InProcessBus()
    sub = bus.subscribe("citybase.ops.>", durable="watch")
    three_am = datetime(2026, 11, 20, 3, 0, tzinfo=SHANGHAI)  # a quarter of the peak: 50 reports a tick
    sim = Simulation(db.engine, bus, rate=2400, tick=5, seed=1, clock=lambda: three_am)
    for _ in range(16):
        sim.step()
    with Session(db.engine) as s:
        channels = set(s.scalars(select(Incident.channel).distinct()))
        statuses = dict(s.execute(select(Incident.status, func.count()).group_by(Incident.status)).all())
        steps = set(s.scalars(select(TimelineEntry.action).distinct()))
    assert channels == {"hotline", "inspector", "open311", "iot", "api"}
    assert statuses.get("closed", 0) > 0 and sum(statuses.values()) > 50
    assert {"receive", "dispatch", "accept", "complete", "verify", "close"} <= steps
    assert sim.stats.get("refused", 0) < sum(v for k, v in sim.stats.items() if k.startswith("moved"))
    Relay(db.engine, bus).drain()  # what the serving process's relay does after each commit
    assert len(sub.fetch(batch=1000, timeout=0.5)) > 100
    db.engine.dispose()


def test_the_daily_rhythm_peaks_by_day_and_is_quiet_at_night():
    assert hourly_weight(10) > hourly_weight(15) > hourly_weight(20) > hourly_weight(3)
    assert hourly_weight(3) == 0.25
