"""The living demo files applications and works them through the service, so the KPIs move; online applicants
upload a PDF for each material they bring, at the window the clerk checks the originals."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citybase.demo.services_simulation import ServicesSimulation
from citybase.services import service
from citybase.services.files import FileStore
from citybase.services.models import Application, MaterialFile


def test_the_simulation_files_applications_and_clerks_finish_them(city, services_tokens, tmp_path):  # noqa: ANN001
    with Session(city.engine) as s:
        before = service.kpis(session=s)["overall"]
        first = s.scalar(select(func.max(Application.id))) or 0
    sim = ServicesSimulation(city.engine, rate=120.0, tick=5.0, seed=3, data_dir=tmp_path)  # 10 a tick
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
    with Session(city.engine) as s:
        uploaded = list(s.scalars(select(MaterialFile).where(MaterialFile.application_id > first)))
        window = list(s.scalars(select(Application.provided).where(Application.id > first,
                                                                   Application.channel == "window")))
    assert uploaded and all(f.content_type == "application/pdf" for f in uploaded)
    store = FileStore.under(tmp_path)
    assert all((store.read(f.sha256) or b"").startswith(b"%PDF-") for f in uploaded)
    assert any(p != "[]" for p in window)  # 原件已核验 at the counter
