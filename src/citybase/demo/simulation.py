"""A living demo: incidents keep arriving from every channel at a daily rhythm, and simulated
dispatchers, departments, inspectors and reporters move them through the loop.

It uses the same service functions as the API (so every step is on the timeline and on the bus), and
reads the work to do through them too: it never queries the loop's tables.
The rhythm follows the hour of day in Shanghai (quiet at night, peaks in the morning and
afternoon); ``rate`` is the number of reports per minute at the daily peak."""

from __future__ import annotations

import logging
import math
import random
import threading
from collections import defaultdict
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from citybase.bus import Bus, Context
from citybase.core.errors import CitybaseError
from citybase.core.timeutil import SHANGHAI, utcnow
from citybase.geo import service as geo
from citybase.kernel import outbox
from citybase.ops.intake import service as intake
from citybase.ops.workflow import service
from citybase.ops.workflow.service import Actor
from citybase.storage.db import make_sessionmaker

log = logging.getLogger("citybase.demo.simulation")
CHANNEL_MIX = (("hotline", 0.45), ("inspector", 0.25), ("open311", 0.15), ("iot", 0.10), ("api", 0.05))
DISPATCHER = Actor("sim:城运中心派单员", roles=frozenset({"dispatcher"}))
INSPECTOR = Actor("sim:网格巡查员", roles=frozenset({"grid_inspector"}))
REPORTER = Actor("sim:报告人", roles=frozenset({"citizen"}))


def hourly_weight(hour: float) -> float:
    """Share of the daily peak at a local hour: two humps (10:00 and 15:00), a quarter of the peak at night."""
    morning = math.exp(-((hour - 10) ** 2) / 6)
    afternoon = 0.85 * math.exp(-((hour - 15) ** 2) / 8)
    evening = 0.35 * math.exp(-((hour - 20) ** 2) / 4)
    return max(0.25, morning + afternoon + evening)


class Simulation(threading.Thread):
    """Runs until stopped; each tick adds reports and advances open work a little."""

    def __init__(self, engine: Engine, bus: Bus, *, rate: float = 6.0, tick: float = 5.0, seed: int = 7,
                 classifier: Any = None, clock: Any = utcnow) -> None:
        super().__init__(name="citybase-simulation", daemon=True)
        self.sessions = make_sessionmaker(engine)
        self.bus, self.rate, self.tick, self.classifier = bus, rate, tick, classifier
        self.rnd = random.Random(seed)
        self.clock = clock  # the rhythm's clock (tests pin the hour)
        self.stop_event = threading.Event()
        self.stats: dict[str, int] = defaultdict(int)
        self._pool: dict[str, list[str]] | None = None
        self._buildings: list[tuple[int, float, float]] | None = None

    # --- material ---
    def _texts(self) -> dict[str, list[str]]:
        if self._pool is None:
            from citybase.ops.classification.corpus import generate_corpus

            pool: dict[str, list[str]] = defaultdict(list)
            for text, code in generate_corpus(12, seed=self.rnd.randrange(1 << 30), styles="heldout"):
                pool[code].append(text)
            self._pool = dict(pool)
        return self._pool

    def _places(self, session: Session) -> list[tuple[int, float, float]]:
        if self._buildings is None:
            idx = geo.address_index(session=session)
            ids = self.rnd.sample(list(idx.by_key.values()), k=min(5000, len(idx.by_key)))
            self._buildings = [(bid, 0.0, 0.0) for bid, _ in ids]
        return self._buildings

    # --- one tick ---
    def step(self) -> None:
        """Add this tick's reports and move open work forward (one transaction per action)."""
        now = self.clock().astimezone(SHANGHAI)
        hour = now.hour + now.minute / 60
        expected = self.rate * hourly_weight(hour) * self.tick / 60
        n = int(expected) + (1 if self.rnd.random() < expected - int(expected) else 0)
        for _ in range(n):
            self._guard(self._report)
        self._advance()

    def _guard(self, fn: Any, *args: Any) -> None:
        with self.sessions() as session:
            outbox.bind_context(session, Context(user_id=None))
            try:
                fn(session, *args)
                session.commit()  # its events go out through the outbox relay
            except CitybaseError as exc:
                session.rollback()
                self.stats["refused"] += 1
                log.debug("simulation step refused: %s", exc.detail)

    def _report(self, session: Session) -> None:
        texts = self._texts()
        code = self.rnd.choice(list(texts))
        text = self.rnd.choice(texts[code])
        channel = self.rnd.choices([c for c, _ in CHANNEL_MIX], weights=[w for _, w in CHANNEL_MIX])[0]
        bid = self.rnd.choice(self._places(session))[0]
        phone = f"13{self.rnd.randrange(0, 10**9):09d}" if channel in ("hotline", "open311") else None
        kw: dict[str, Any] = {"building_id": bid, "reporter_phone": phone, "classifier": self.classifier}
        if channel in ("inspector", "iot", "api"):
            kw["category_code"] = code  # these channels name the category themselves
        if channel == "iot":
            kw["priority"] = "urgent"
        intake.intake(session=session, channel=channel, description=text, actor=Actor(f"sim:{channel}"), **kw)
        self.stats[f"reported:{channel}"] += 1

    def _advance(self) -> None:
        with self.sessions() as session:
            open_ids = service.waiting_work(session=session, limit=40)  # the longest-waiting work first
        for inc_id, status in open_ids:
            if self.rnd.random() < 0.5:
                self._guard(self._move, inc_id, status)
        with self.sessions() as session:
            closed = service.unrated_closed(session=session, limit=5)
        for inc_id in closed:
            if self.rnd.random() < 0.3:
                self._guard(self._rate, inc_id)

    def _move(self, session: Session, inc_id: int, status: str) -> None:
        inc = service.get_incident(session=session, incident_id=inc_id, lock=True)
        r = self.rnd.random()
        if inc.status == "received":
            if r < 0.03:
                service.reject(session=session, incident=inc, actor=DISPATCHER, reason="非本辖区职责，已告知报告人转办渠道")
            else:
                service.dispatch(session=session, incident=inc, actor=DISPATCHER)
        elif inc.status == "registered":
            service.dispatch(session=session, incident=inc, actor=DISPATCHER)
        elif inc.status in ("dispatched", "handling"):
            task = service.next_open_task(session=session, incident_id=inc.id)
            if task is None:
                return
            dept = Actor(f"sim:部门{task.department_id}", roles=frozenset({"handler"}), department_id=task.department_id)
            if task.status == "pending":
                if r < 0.04 and task.role == "main":
                    service.return_task(session=session, incident=inc, actor=dept, reason="经核实不属于本部门职责")
                else:
                    service.accept(session=session, incident=inc, actor=dept, task_id=task.id)
                    if inc.reporter_phone and self.rnd.random() < 0.9:
                        service.first_contact(session=session, incident=inc, actor=dept, note="已电话联系报告人")
            elif r < 0.03 and not inc.extension_days:
                service.request_extension(session=session, incident=inc, actor=dept, days=2, reason="需协调产权单位")
            else:
                service.complete_task(session=session, incident=inc, actor=dept, task_id=task.id,
                                      result="已到场处置完毕")
            if inc.extension_days and self.rnd.random() < 0.5:
                service.decide_extension(session=session, incident=inc, actor=DISPATCHER, approve=r < 0.8)
        elif inc.status == "verifying":
            passed = r < 0.9
            service.verify(session=session, incident=inc, actor=INSPECTOR, passed=passed,
                           note="现场核查已整改" if passed else "现场核查仍未整改到位")
        self.stats[f"moved:{status}"] += 1

    def _rate(self, session: Session, inc_id: int) -> None:
        inc = service.get_incident(session=session, incident_id=inc_id, lock=True)
        rating = self.rnd.choices(service.RATINGS, weights=(80, 13, 7))[0]
        service.rate(session=session, incident=inc, actor=REPORTER, rating=rating)
        self.stats[f"rated:{rating}"] += 1

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.step()
            except Exception:  # noqa: BLE001 - the demo must keep going
                log.exception("simulation tick failed")
            self.stop_event.wait(self.tick)

    def stop(self) -> None:
        self.stop_event.set()
