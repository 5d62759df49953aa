"""Intake is idempotent on the client's key: a retry after a lost answer gets the first answer, never a duplicate.

Every intake endpoint (internal API, 12345 hotline, grid inspections, Open311) takes an ``Idempotency-Key``;
Open311 also treats the same report resubmitted by the same account soon after as the same request. Races
run real threads against the app served by uvicorn, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import socket
import threading
import time
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from citybase.core.timeutil import utcnow
from citybase.geo.models import Building
from citybase.kernel import idempotency
from citybase.kernel.idempotency import IdempotencyKey
from citybase.ops.workflow.models import Incident
from citybase.storage.db import make_sessionmaker

_next = itertools.count()
O311 = "/open311/v2"


def _building(city) -> Building:
    """A public building no other test reports at, a new one each call."""
    with Session(city.engine) as s:
        rows = s.scalars(select(Building).where(Building.use == "public").order_by(Building.id)).all()
    return rows[(next(_next) * 11 + 3) % len(rows)]


def _text(what: str) -> str:
    return f"{what}（{uuid.uuid4().hex[:12]}）"


def _stored(city, fragment: str) -> int:
    with Session(city.engine) as s:
        return s.scalar(select(func.count()).select_from(Incident).where(Incident.description.contains(fragment)))


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


# Each intake endpoint: (name, how to send one report with a body made from (city, text, building)).
def _incident(client, city, text, b, headers, user="dispatcher"):
    return client.post("/api/v1/ops/incidents", headers={**city.auth(user), **headers},
                       json={"description": text, "category_code": "02003", "lon": b.lon, "lat": b.lat})


def _hotline(client, city, text, b, headers, user="dispatcher"):
    return client.post("/api/v1/ops/hotline", headers={**city.auth(user), **headers},
                       json={"caller_phone": "13900001111", "text": text, "address": b.address})


def _inspection(client, city, text, b, headers, user="inspector"):
    photo = b"\xff\xd8\xff\xe0" + text.encode()
    return client.post("/api/v1/ops/inspections", headers={**city.auth(user), **headers},
                       data={"lon": str(b.lon), "lat": str(b.lat), "category_code": "02003", "description": text},
                       files={"photo": ("p.jpg", photo, "image/jpeg")})


def _open311(client, city, text, b, headers, user="citizen"):
    return client.post(f"{O311}/requests.json", headers=headers, data={
        "api_key": city.tokens[user], "service_code": "02003", "lat": b.lat, "long": b.lon, "description": text})


ENDPOINTS = {"incidents": _incident, "hotline": _hotline, "inspections": _inspection, "open311": _open311}
OTHER_USER = {"incidents": "admin", "hotline": "admin", "inspections": "admin", "open311": "dispatcher"}


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_a_retry_with_the_same_key_gets_the_first_answer_and_files_once(client, city, endpoint):
    send, text, b, key = ENDPOINTS[endpoint], _text("路面塌陷一个大坑"), _building(city), _key()
    first = send(client, city, text, b, key)
    assert first.status_code in (200, 201), first.text
    again = send(client, city, text, b, key)
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert again.headers["content-type"] == first.headers["content-type"]
    assert _stored(city, text) == 1

    # the key is the caller's own: another account using the same key files its own report
    other = send(client, city, text, b, key, user=OTHER_USER[endpoint])
    assert other.status_code == first.status_code and other.content != first.content
    assert _stored(city, text) == 2


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_the_same_key_with_another_body_is_refused(client, city, endpoint):
    send, text, b, key = ENDPOINTS[endpoint], _text("窨井盖松动"), _building(city), _key()
    assert send(client, city, text, b, key).status_code in (200, 201)
    r = send(client, city, text + "，很危险", b, key)
    status = 400 if endpoint == "open311" else 422
    assert r.status_code == status, r.text
    message = r.json()[0]["description"] if endpoint == "open311" else r.json()["detail"] + r.json()["fix"]
    assert "already used for a different request" in message and "new key" in message
    assert _stored(city, text) == 1 and _stored(city, text + "，很危险") == 0


@pytest.mark.parametrize("bad", ["", "x" * 256, "键".encode(), "a b"])
def test_a_malformed_key_is_refused(client, city, bad):
    text = _text("路灯杆倾斜")
    r = _incident(client, city, text, _building(city), {"Idempotency-Key": bad})
    assert r.status_code == 422, r.text
    assert "Idempotency-Key" in r.json()["detail"]
    assert _stored(city, text) == 0


def test_an_open311_resubmission_is_the_same_request_within_the_window(client, city):
    text, b = _text("小区门口的路灯一直闪"), _building(city)
    first = _open311(client, city, text, b, {})
    assert first.status_code == 200, first.text
    again = _open311(client, city, text, b, {})  # a client that timed out and sent the same form again
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    assert _stored(city, text) == 1
    as_xml = client.post(f"{O311}/requests.xml", data={"api_key": city.tokens["citizen"], "service_code": "02003",
                                                       "lat": b.lat, "long": b.lon, "description": text})
    assert as_xml.status_code == 200 and as_xml.headers["content-type"].startswith("text/xml")

    # once the window has passed, the same text is a new report (the loop then merges it as a repeat)
    with Session(city.engine) as s, s.begin():
        s.execute(update(IdempotencyKey).where(IdempotencyKey.key.like("open311-resubmission:%"),
                                               IdempotencyKey.response == first.text)
                  .values(created_at=utcnow() - timedelta(minutes=11)))
    later = _open311(client, city, text, b, {})
    assert later.status_code == 200 and "idempotent-replayed" not in later.headers
    assert later.json()[0]["service_request_id"] != first.json()[0]["service_request_id"]


# ---------------------------------------------------------------- races


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(city, client_for):
    """The test city's app served by uvicorn in a thread; yields its base URL."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(client_for(city).app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="idempotency-test", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _race(base: str, n: int, send) -> list[httpx.Response]:
    """``n`` real threads, each with its own connection, send at the same moment."""
    barrier, out, errors = threading.Barrier(n), [None] * n, []

    def one(i: int) -> None:
        with httpx.Client(base_url=base, timeout=120) as http:
            barrier.wait()
            try:
                out[i] = send(http)
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return out  # type: ignore[return-value]


@pytest.mark.parametrize("endpoint", ["incidents", "open311"])
def test_racing_retries_make_one_incident(served, city, endpoint):
    send, text, b, key = ENDPOINTS[endpoint], _text("消防通道被杂物堵塞"), _building(city), _key()
    answers = _race(served, 8, lambda http: send(http, city, text, b, key))
    assert {r.status_code for r in answers} == {201 if endpoint == "incidents" else 200}, answers[0].text
    assert len({r.content for r in answers}) == 1
    assert _stored(city, text) == 1


def test_racing_open311_resubmissions_without_a_key_make_one_incident(served, city):
    text, b = _text("人行道护栏被撞倒"), _building(city)
    answers = _race(served, 8, lambda http: _open311(http, city, text, b, {}))
    assert {r.status_code for r in answers} == {200} and len({r.content for r in answers}) == 1
    assert _stored(city, text) == 1


def test_the_second_of_two_concurrent_writers_gets_the_first_answer_and_its_work_is_undone(city):
    # The interleaving the races may or may not hit, forced: both look the key up before either stores it.
    sessions = make_sessionmaker(city.engine)
    key, fp, principal = str(uuid.uuid4()), idempotency.fingerprint("POST", "/x", {"a": 1}), "user:test-race"
    mine = idempotency.Answer(201, "application/json", b'{"who":"first"}')
    theirs = idempotency.Answer(201, "application/json", b'{"who":"second"}')
    a, b = sessions(), sessions()
    try:
        assert idempotency.lookup(session=a, principal=principal, key=key, fingerprint=fp) is None
        assert idempotency.lookup(session=b, principal=principal, key=key, fingerprint=fp) is None
        a.commit(), b.commit()
        assert idempotency.record(session=a, principal=principal, key=key, fingerprint=fp, answer=mine) is None
        got: list[idempotency.Answer | None] = []

        def second() -> None:  # B's work: another row, then its answer (blocks until A commits)
            b.add(IdempotencyKey(principal=principal, key=key + "-b-work", fingerprint=fp, status_code=201,
                                 media_type="application/json", response="{}", created_at=utcnow()))
            got.append(idempotency.record(session=b, principal=principal, key=key, fingerprint=fp, answer=theirs))
            b.commit()

        t = threading.Thread(target=second)
        t.start()
        a.commit()
        t.join()
        assert got == [mine]
        with Session(city.engine) as s:
            rows = s.scalars(select(IdempotencyKey.key).where(IdempotencyKey.principal == principal)).all()
        assert rows == [key]  # B's work was rolled back with its losing answer
    finally:
        a.close(), b.close()


def test_keys_are_forgotten_after_24_hours(city):
    sessions = make_sessionmaker(city.engine)
    principal, now = f"user:prune-{uuid.uuid4().hex[:6]}", utcnow()
    with sessions() as s:
        for name, age in (("old", timedelta(hours=25)), ("new", timedelta(hours=1))):
            s.add(IdempotencyKey(principal=principal, key=name, fingerprint="f", status_code=201,
                                 media_type="application/json", response="{}", created_at=now - age))
        s.commit()
        assert idempotency.prune(session=s, now=now) >= 1
        s.commit()
        assert s.scalars(select(IdempotencyKey.key).where(IdempotencyKey.principal == principal)).all() == ["new"]
