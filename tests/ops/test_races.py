"""Two conflicting workflow steps on one incident at the same moment: one succeeds, the other gets 409,
and what is stored is one consistent story (issue 6). Real threads against a real server, both engines."""

from __future__ import annotations

import threading
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from citybase.geo.models import Building
from citybase.ops.intake import service as intake_service
from citybase.ops.workflow import service
from citybase.ops.workflow.models import Incident, Task, TimelineEntry
from citybase.storage.db import make_sessionmaker
from tests.servers import call, serve

PAIRS = 24  # incidents per kind of conflict
# Pairs raced at once. More than the PostgreSQL pool holds (40) stalls the server for the pool's timeout: a
# finished request keeps its session's connection while it waits for a thread to serialise its response
# (FastAPI closes the session after the response), while the threads wait for connections.
WAVE = 12
WORDS = "路灯 井盖 垃圾 占道 噪声 漏水 树木 广告 违停 积水 护栏 油烟 烟头 渣土 涂鸦 乱堆".split()
# Each pair: (the incident's state before, step A, step B). Either order is a valid outcome, never both.
CONFLICTS = [
    ("registered", ("close", {"reason": "经核实已自行解决"}), ("dispatch", {})),
    ("received", ("reject", {"reason": "非本辖区职责"}), ("register", {})),
]


def _incidents(city, state: str, n: int, offset: int) -> list[int]:
    """``n`` fresh incidents in ``state``, at buildings no other test uses, with texts too different to merge."""
    sessions = make_sessionmaker(city.engine)
    with sessions() as s:
        buildings = list(s.scalars(select(Building).order_by(Building.id.desc()).offset(200 + offset).limit(n * 3)))
    ids = []
    for k in range(n):
        with sessions() as s:
            text = f"{WORDS[k % len(WORDS)]}问题 {uuid.uuid4().hex} 编号{k}"
            r = intake_service.intake(session=s, channel="api", description=text, category_code="01001",
                               building_id=buildings[k * 3].id, auto_dispatch=False)
            if r.merged_into is None:
                if state == "registered":
                    service.register(session=s, incident=r.incident, actor=service.SYSTEM)
                s.commit()
                ids.append(r.incident.id)
    return ids


def _story_is_consistent(s: Session, inc: Incident) -> list[str]:
    """What is wrong with the stored incident, its tasks and its timeline (empty when nothing)."""
    wrong = []
    entries = list(s.scalars(select(TimelineEntry).where(TimelineEntry.incident_id == inc.id)
                             .order_by(TimelineEntry.id)))
    for prev, cur in zip(entries, entries[1:], strict=False):
        if cur.from_status != prev.to_status:
            wrong.append(f"timeline {cur.action} starts from {cur.from_status}, the step before ended at {prev.to_status}")
    if entries[-1].to_status != inc.status:
        wrong.append(f"status {inc.status} but the timeline ends at {entries[-1].to_status}")
    open_tasks = s.scalar(select(Task.id).where(Task.incident_id == inc.id, Task.status.in_(("pending", "accepted")))
                          .limit(1))
    if (open_tasks is not None) != (inc.status in ("dispatched", "handling")):
        wrong.append(f"status {inc.status} with {'an' if open_tasks else 'no'} open task")
    return wrong


def test_of_two_conflicting_steps_one_succeeds_and_the_other_gets_409(city, tmp_path):
    races = []
    for n, (state, a, b) in enumerate(CONFLICTS):
        races += [(i, a, b) for i in _incidents(city, state, PAIRS, offset=n * PAIRS * 3)]
    assert len(races) >= PAIRS
    answers: dict[tuple[int, str], object] = {}
    dispatcher = city.auth("dispatcher")

    with serve(city.db.url, tmp_path) as server:
        def step(start: threading.Barrier, inc_id: int, action: str, body: dict) -> None:
            start.wait()
            answers[inc_id, action] = call("POST", f"{server.base}/api/v1/ops/incidents/{inc_id}/{action}",
                                           json_body=body, headers=dispatcher, timeout=60)

        for w in range(0, len(races), WAVE):
            wave = races[w:w + WAVE]
            start = threading.Barrier(2 * len(wave))
            threads = [threading.Thread(target=step, args=(start, i, *x), daemon=True) for i, a, b in wave for x in (a, b)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=300)
            assert not any(t.is_alive() for t in threads)

    outcomes, wrong = [], []
    with Session(city.engine) as s:
        for inc_id, (act_a, _), (act_b, _) in races:
            got = {act: answers[inc_id, act] for act in (act_a, act_b)}
            outcomes.append(sorted(a.status for a in got.values()))
            for act, a in got.items():
                if a.status == 409 and not (a.headers.get("content-type", "").startswith("application/problem+json")
                                            and a.body["status"] == 409 and a.body.get("fix")):
                    wrong.append(f"#{inc_id} {act}: a 409 without a problem+json body saying what to do: {a.body}")
            inc = s.get(Incident, inc_id)
            done = [e.action for e in s.scalars(select(TimelineEntry).where(TimelineEntry.incident_id == inc_id))]
            winner = next((act for act, a in got.items() if a.status == 200), None)
            if winner is not None and (done.count(act_a) + done.count(act_b) != 1 or winner not in done):
                wrong.append(f"#{inc_id}: {winner} answered 200 but the timeline holds {done}")
            wrong += [f"#{inc_id}: {w}" for w in _story_is_consistent(s, inc)]

    lost = [(k, a.status, a.error) for k, a in answers.items() if a.status == 0]
    assert lost == []  # every request was answered
    assert outcomes == [[200, 409]] * len(races)
    assert wrong == []


# ---------------------------------------------------------------- 督办 from several processes at once

SWEEPERS = 4


def _sweep_in_process(url: str, barrier, results) -> None:
    """One serving process's supervision sweep (run in a spawned process)."""
    from citybase.kernel.domain import load_models

    load_models()  # every table the incident rows refer to, as a serving process has
    from citybase.storage.db import make_engine

    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    barrier.wait()
    try:
        with sessions() as s:
            raised = service.supervise_overdue(session=s)
            s.commit()
        results.put(("ok", [r.incident_id for r in raised]))
    except Exception as exc:  # noqa: BLE001 - reported to the test
        results.put(("error", f"{exc.__class__.__name__}: {exc}"[:500]))
    finally:
        engine.dispose()


def test_processes_sweeping_at_once_raise_one_supervision_per_overdue_incident(city):
    import multiprocessing as mp
    from datetime import timedelta

    from sqlalchemy import func, update

    from citybase.core.timeutil import utcnow
    from citybase.ops.workflow.models import Supervision

    ids = _incidents(city, "registered", 30, offset=2 * PAIRS * 3)
    with Session(city.engine) as s:
        s.execute(update(Incident).where(Incident.id.in_(ids)).values(deadline_at=utcnow() - timedelta(hours=2)))
        s.commit()
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(SWEEPERS), ctx.Queue()
    procs = [ctx.Process(target=_sweep_in_process, args=(city.db.url, barrier, results)) for _ in range(SWEEPERS)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)

    assert [kind for kind, _ in outcomes] == ["ok"] * SWEEPERS, outcomes
    raised = [i for _, got in outcomes for i in got]
    assert len(raised) == len(set(raised))  # no incident raised by two sweeps
    assert set(ids) <= set(raised)
    with Session(city.engine) as s:
        stored = dict(s.execute(select(Supervision.incident_id, func.count()).where(Supervision.incident_id.in_(ids))
                                .group_by(Supervision.incident_id)).all())
        noted = dict(s.execute(select(TimelineEntry.incident_id, func.count())
                               .where(TimelineEntry.incident_id.in_(ids), TimelineEntry.action == "supervise")
                               .group_by(TimelineEntry.incident_id)).all())
    assert stored == {i: 1 for i in ids}
    assert noted == {i: 1 for i in ids}


def test_a_second_supervision_of_the_same_missed_deadline_cannot_be_stored(city):
    from datetime import timedelta

    from sqlalchemy import update
    from sqlalchemy.exc import IntegrityError

    from citybase.core.timeutil import utcnow
    from citybase.ops.workflow.models import Supervision

    (inc_id,) = _incidents(city, "registered", 1, offset=2 * PAIRS * 3 + 90)
    with Session(city.engine) as s:
        s.execute(update(Incident).where(Incident.id == inc_id).values(deadline_at=utcnow() - timedelta(hours=1)))
        s.commit()
    with Session(city.engine) as s:
        (first,) = [x for x in service.supervise_overdue(session=s) if x.incident_id == inc_id]
        s.commit()
        s.add(Supervision(incident_id=inc_id, department_id=first.department_id, deadline_at=first.deadline_at,
                          reason="again", created_at=utcnow()))
        try:
            s.commit()
            stored_twice = True
        except IntegrityError:
            s.rollback()
            stored_twice = False
    assert stored_twice is False
