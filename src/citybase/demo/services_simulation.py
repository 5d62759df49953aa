"""The living demo of 一网通办: applications keep arriving (online from citizens and firms, at the window),
and the departments' clerks work them — accept, sometimes ask for a correction that the applicant answers,
review, decide (mostly approve), finish — and applicants rate them; so the KPIs move.

Everything goes through ``services.service`` as the actors would, never the tables."""

from __future__ import annotations

import json
import logging
import random
import threading
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from citybase.bus import Context
from citybase.core.errors import CitybaseError
from citybase.core.settings import load_settings
from citybase.core.timeutil import utcnow
from citybase.demo.documents import one_page_pdf
from citybase.kernel import outbox
from citybase.registry import service as registry
from citybase.services import service
from citybase.services.files import FileStore
from citybase.services.service import Actor
from citybase.storage.db import make_sessionmaker

log = logging.getLogger("citybase.demo.services")
ADMIN = Actor("sim:clerk", roles=frozenset({"admin"}))
WINDOW = Actor("sim:window", roles=frozenset({"window_clerk"}))
NEXT = {"pending": "accept", "accepted": "review", "reviewing": "approve", "approved": "complete",
        "refused": "complete"}
SAMPLES = {"child_name": "王小宝", "child_sex": "女", "birth_hospital": "复旦大学附属中山医院", "mother_name": "李梅",
           "father_name": "王强", "employer": "上海某某科技有限公司", "house_address": "徐汇区漕溪北路1号",
           "property_cert_no": "沪(2024)徐字不动产权第012345号", "buyer_name": "陈晨", "seller_name": "周舟",
           "deceased_name": "赵老伯", "relation": "子女", "shop_name": "徐汇小馆", "shop_address": "徐汇区天钥桥路100号",
           "sign_text": "徐汇小馆", "reason": "个人需要", "school": "徐汇区第一中心小学", "student_name": "张小明",
           "vehicle_plate": "沪A12345", "project_name": "示范项目", "spouse_name": "刘芳",
           "business_scope": "餐饮服务；食品销售", "entity_name": "上海徐汇示范有限公司", "entity_address": "徐汇区虹桥路1号",
           "legal_rep": "张三"}


def fill(schema: dict[str, Any], answers: dict[str, Any], rnd: random.Random, id_number: str) -> dict[str, Any]:
    """Plausible answers for the required fields a prefill left empty."""
    out = {}
    for key in schema.get("required", []):
        if answers.get(key) not in (None, ""):
            continue
        prop = schema["properties"][key]
        if key in SAMPLES:
            out[key] = SAMPLES[key]
        elif "enum" in prop:
            out[key] = rnd.choice(prop["enum"])
        elif prop.get("x-check") == "id_number":
            out[key] = id_number
        elif prop.get("format") == "date":
            out[key] = (date.today() - timedelta(days=rnd.randrange(1, 60))).isoformat()
        elif key == "bank_account":
            out[key] = "62220202" + "".join(str(rnd.randrange(10)) for _ in range(11))
        elif prop.get("type") in ("integer", "number"):
            out[key] = max(prop.get("minimum", 1), min(prop.get("maximum", 100), rnd.randrange(1, 50)))
        elif prop.get("type") == "string":
            out[key] = "示例" * max(1, prop.get("minLength", 2) // 2 + 1)
    return out


class ServicesSimulation(threading.Thread):
    """Runs until stopped; each tick files a few applications and moves open parts forward."""

    def __init__(self, engine: Engine, *, rate: float = 6.0, tick: float = 5.0, seed: int = 11,
                 data_dir: Path | None = None) -> None:
        super().__init__(name="citybase-services-simulation", daemon=True)
        self.sessions = make_sessionmaker(engine)
        # online applicants upload a one-page PDF per material to bring, into the deployment's file store
        self.store = FileStore.under(data_dir if data_dir is not None else load_settings().data_dir)
        self.rate, self.tick = rate, tick
        self.rnd = random.Random(seed)
        self.stop_event = threading.Event()
        self.stats: dict[str, int] = defaultdict(int)

    def _guard(self, fn: Any, *args: Any) -> Any:
        with self.sessions() as session:
            outbox.bind_context(session, Context(user_id=None))
            try:
                out = fn(session, *args)
                session.commit()
                return out
            except CitybaseError as exc:
                session.rollback()
                self.stats["refused"] += 1
                log.debug("services simulation step refused: %s", exc.detail)
                return None

    def step(self) -> None:
        """File this tick's applications, then move open work (one transaction per action)."""
        expected = self.rate * self.tick / 60
        n = int(expected) + (1 if self.rnd.random() < expected - int(expected) else 0)
        for _ in range(n):
            self._guard(self._apply)
        self._advance()

    def _apply(self, session: Session) -> None:
        bundles = service.list_bundles(session=session)
        bundle, target = self.rnd.choice(bundles)
        kind = "entity" if target.applicant_kind == "entity" or (target.applicant_kind == "any"
                                                                 and self.rnd.random() < 0.6) else "person"
        if kind == "person":
            rows, total = registry.list_persons(session=session, page_size=1)
            rows, _ = registry.list_persons(session=session, page=self.rnd.randrange(1, max(2, total)), page_size=1)
            ref: dict[str, Any] = {"person_id": rows[0].id}
            idn = rows[0].id_number
        else:
            rows, total = registry.list_entities(session=session, page_size=1)
            rows, _ = registry.list_entities(session=session, page=self.rnd.randrange(1, max(2, total)), page_size=1)
            ref = {"legal_entity_id": rows[0].id}
            idn = rows[0].legal_rep_id_number
        online = self.rnd.random() < 0.8
        actor = (Actor("sim:applicant", roles=frozenset({"citizen"}), person_id=ref.get("person_id"),
                       legal_entity_id=ref.get("legal_entity_id")) if online else WINDOW)
        app = service.start(session=session, actor=actor, bundle=bundle.code, applicant_kind=kind,
                            **({} if online else ref))
        schema = service.form_of(session=session, app=app)
        answers = fill(schema, json.loads(app.form), self.rnd, idn)
        view = service.materials_view(session=session, app=app)
        consent = [m["source"]["type"] for m in view if m["source"]["kind"] == "licence"]
        to_bring = [m for m in view if m["status"] == "to_bring"]
        # at the window the clerk checks the paper originals (原件已核验); online the applicant uploads each
        service.save_draft(session=session, actor=actor, application_id=app.id, form=answers, consent=consent,
                           provided=None if online else [m["key"] for m in to_bring])
        if online:
            for m in to_bring:
                service.upload_material(session=session, actor=actor, application_id=app.id, material_key=m["key"],
                                        name=f"{m['name']}.pdf", store=self.store,
                                        data=one_page_pdf(f"{app.code} {m['key'].split(':')[0]} #{self.rnd.randrange(10**6)}"))
        service.submit(session=session, actor=actor, application_id=app.id)
        self.stats[f"applied:{'online' if online else 'window'}"] += 1

    def _advance(self) -> None:
        with self.sessions() as session:
            parts, _ = service.department_queue(session=session, actor=ADMIN, page_size=60,
                                                statuses=list(NEXT) + ["correction"])
            work = [(p.application_id, p.id, p.status) for p in parts]
        for app_id, part_id, status in work:
            if self.rnd.random() < 0.5:
                self._guard(self._move, app_id, part_id, status)
        with self.sessions() as session:
            done = service.unrated_done(session=session, limit=5)
        for app_id in done:
            if self.rnd.random() < 0.5:
                self._guard(self._rate, app_id)

    def _move(self, session: Session, app_id: int, part_id: int, status: str) -> None:
        r = self.rnd.random()
        if status == "correction":
            app = service.get_application(session=session, actor=ADMIN, application_id=app_id)
            owner = Actor("sim:applicant", roles=frozenset({"citizen"}), person_id=app.person_id,
                          legal_entity_id=app.legal_entity_id)
            service.act(session=session, actor=owner, application_id=app_id, part_id=part_id, action="correct")
            return
        action = NEXT[status]
        reason = None
        if status == "pending" and r < 0.03:
            action, reason = "not-accept", "材料不齐全且无法补正"
        elif status in ("accepted", "reviewing") and r < 0.08:
            action, reason = "request-correction", "请补正清晰的证明材料"
        elif status == "reviewing" and r < 0.12:
            action, reason = "refuse", "不符合法定条件"
        service.act(session=session, actor=ADMIN, application_id=app_id, part_id=part_id, action=action, reason=reason)
        self.stats[f"step:{action}"] += 1

    def _rate(self, session: Session, app_id: int) -> None:
        app = service.get_application(session=session, actor=ADMIN, application_id=app_id)
        grade = self.rnd.choices([5, 4, 3, 2, 1], weights=[70, 18, 7, 3, 2])[0]
        if app.outcome == "refused":
            grade = min(grade, self.rnd.choice([1, 2, 3]))
        service.rate(session=session, actor=ADMIN, application_id=app_id, grade=grade,
                     channel="window" if app.channel == "window" else "online")
        self.stats["rated"] += 1
        rect = service.rating_of(session=session, app=app)[1]
        if rect is not None and self.rnd.random() < 0.7:
            service.rectify(session=session, actor=ADMIN, rectification_id=rect.id, action_taken="已约谈经办人并改进告知方式",
                            callback_note="申请人认可整改结果")

    def run(self) -> None:
        started = utcnow()
        while not self.stop_event.wait(self.tick):
            try:
                self.step()
            except Exception:  # noqa: BLE001 - the demo keeps going; the log says what happened
                log.exception("services simulation tick failed (running since %s)", started)

    def stop(self) -> None:
        self.stop_event.set()
