"""The living demo files applications and works them through the service, so the KPIs move."""

from __future__ import annotations

from sqlalchemy.orm import Session

from citybase.demo.services_simulation import ServicesSimulation
from citybase.services import service


def test_the_simulation_files_applications_and_clerks_finish_them(city, services_tokens):  # noqa: ANN001
    with Session(city.engine) as s:
        before = service.kpis(session=s)["overall"]
    sim = ServicesSimulation(city.engine, rate=120.0, tick=5.0, seed=3)  # 10 applications a tick
    for _ in range(12):
        sim.step()
    applied = sim.stats["applied:online"] + sim.stats["applied:window"]
    assert applied >= 50 and sim.stats["applied:window"] > 0
    assert sim.stats["step:accept"] and sim.stats["step:complete"]
    with Session(city.engine) as s:
        after = service.kpis(session=s)["overall"]
    assert after["applications"] >= before["applications"] + applied
    assert after["done"] > before["done"]
    assert after["material_exemption_rate"] > 0 and after["actual_online_rate"] > 0
