"""What an operator relies on: a request id on every answer and log line, and /metrics for Prometheus."""

import io
import json
import logging

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from citybase.api.app import create_app
from citybase.api.observability import RequestContextMiddleware
from citybase.bus.memory import InProcessBus
from citybase.kernel.logs import setup_logging
from citybase.security.deps import allow, request_id
from citybase.security.roles import PUBLIC
from citybase.storage.migrate import upgrade


@pytest.fixture
def api(empty_db):
    upgrade(empty_db.engine)
    return TestClient(create_app(engine=empty_db.engine, bus=InProcessBus()))


def _samples(text: str, name: str) -> dict[tuple, float]:
    return {tuple(sorted(s.labels.items())): s.value for fam in text_string_to_metric_families(text)
            for s in fam.samples if s.name == name}


@pytest.mark.parametrize("empty_db", ["sqlite"], indirect=True)
def test_a_plain_request_id_is_echoed_and_an_unsafe_one_replaced(api):
    assert api.get("/api/v1/health", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    forged = api.get("/api/v1/health", headers={"X-Request-ID": "x\n{\"level\": \"ERROR\"}"}).headers["x-request-id"]
    assert forged != "x\n{\"level\": \"ERROR\"}" and len(forged) == 32
    first, second = (api.get("/api/v1/health").headers["x-request-id"] for _ in range(2))
    assert first != second


@pytest.mark.parametrize("empty_db", ["sqlite"], indirect=True)
def test_problem_answers_carry_the_request_id_too(api):
    r = api.get("/api/v1/persons", headers={"X-Request-ID": "denied-1"})
    assert r.status_code == 401 and r.headers["x-request-id"] == "denied-1"


@pytest.mark.parametrize("empty_db", ["sqlite"], indirect=True)
def test_metrics_count_requests_by_route_template_not_by_raw_path(api):
    def count(text, route, status):
        return _samples(text, "citybase_http_requests_total").get(
            (("method", "GET"), ("route", route), ("status", status)), 0.0)

    before = api.get("/metrics").text
    for code in ("310104", "310105", "310106"):
        assert api.get(f"/api/v1/areas/{code}").status_code == 404
    api.get("/no/such/page")
    after = api.get("/metrics")
    assert after.status_code == 200 and after.headers["content-type"].startswith("text/plain; version=")
    assert count(after.text, "/api/v1/areas/{code}", "404") - count(before, "/api/v1/areas/{code}", "404") == 3
    assert count(after.text, "<unmatched>", "404") - count(before, "<unmatched>", "404") == 1
    assert not any("310104" in dict(k)["route"] for k in _samples(after.text, "citybase_http_requests_total"))
    latency = _samples(after.text, "citybase_http_request_duration_seconds_count")
    assert latency[(("method", "GET"), ("route", "/api/v1/areas/{code}"))] >= 3


@pytest.mark.parametrize("empty_db", ["sqlite"], indirect=True)
def test_the_outbox_depth_is_read_at_every_scrape(api):
    from citybase.kernel import metrics

    depth = iter([7, 3])
    metrics.set_outbox_depth(lambda: next(depth))
    try:
        assert _samples(api.get("/metrics").text, "citybase_outbox_depth") == {(): 7.0}
        assert _samples(api.get("/metrics").text, "citybase_outbox_depth") == {(): 3.0}
        metrics.set_outbox_depth(lambda: 1 / 0)  # a failing source leaves the gauge out, the scrape still answers
        r = api.get("/metrics")
        assert r.status_code == 200 and "citybase_outbox_depth" not in _samples(r.text, "citybase_outbox_depth")
    finally:
        metrics._CALLBACKS.gauges.pop("citybase_outbox_depth", None)


def test_consumer_and_timer_counters_are_exported():
    from citybase.kernel import metrics

    def value(name, **labels):
        return _samples(metrics.render().decode(), name).get(tuple(sorted(labels.items())), 0.0)

    handled = value("citybase_consumer_handled_total", consumer="test-consumer")
    metrics.consumer_handled("test-consumer", lag_seconds=0.2)
    metrics.consumer_failed("test-consumer", "dead_lettered")
    metrics.timer_ran("test-timer", ok=False)
    assert value("citybase_consumer_handled_total", consumer="test-consumer") == handled + 1
    assert value("citybase_consumer_failed_total", consumer="test-consumer", outcome="dead_lettered") >= 1
    assert value("citybase_timer_runs_total", timer="test-timer", outcome="failed") >= 1
    assert value("citybase_consumer_lag_seconds_bucket", consumer="test-consumer", le="0.5") >= 1


def test_log_records_inside_a_handler_carry_the_request_id_as_json():
    app = FastAPI()
    app.add_middleware(RequestContextMiddleware)
    service_log = logging.getLogger("citybase.test.service")

    @app.get("/work")
    def work(rid: str = Depends(request_id), _: object = Depends(allow(PUBLIC))) -> dict:
        service_log.info("did the work", extra={"incident_id": 42})  # a sync handler runs in a worker thread
        return {"request_id": rid}

    out = io.StringIO()
    handler = setup_logging("json", "INFO", stream=out)
    try:
        r = TestClient(app).get("/work", headers={"X-Request-ID": "req-77"})
    finally:
        logging.getLogger().removeHandler(handler)
    assert r.json() == {"request_id": "req-77"}  # the id the handlers see is the one in the header
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    mine = [rec for rec in records if rec["logger"] == "citybase.test.service"]
    assert mine == [{**mine[0], "message": "did the work", "request_id": "req-77", "context_id": "req-77",
                     "incident_id": 42, "level": "INFO"}]


def test_text_logs_show_the_ids_only_when_there_are_some():
    from citybase.kernel.logs import bound

    out = io.StringIO()
    handler = setup_logging("text", "INFO", stream=out)
    log = logging.getLogger("citybase.test.text")
    try:
        log.info("outside")
        with bound(context_id="evt-ctx-1"):
            log.warning("in a consumer")
        log.info("after")
    finally:
        logging.getLogger().removeHandler(handler)
    outside, inside, after = out.getvalue().splitlines()
    assert outside.endswith("citybase.test.text outside") and after.endswith("citybase.test.text after")
    assert inside.endswith("WARNING citybase.test.text [ctx=evt-ctx-1] in a consumer")
