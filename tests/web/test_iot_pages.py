"""物联感知's pages in headless Chromium, on devices provisioned and fed through the HTTP API in the test: the
devices on the map (coloured by state, filtered) and in the paged, searchable list, health by type and
department; one device with its latest values in their units, a trend chart per attribute and a refused reading
with its Chinese reason; a smoke detector's alarm acknowledged and cleared on the alarms page (times in
Asia/Shanghai). A role that may only read sees no buttons; the header's IoT link is for staff only."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import VIEWPORT, Site, Visit, assert_clean
from tests.web.test_ops_pages import HAN, call, settle, shanghai, sign_in

pytestmark = pytest.mark.browser

JS = Path(__file__).resolve().parents[2] / "src" / "citybase" / "web" / "static" / "iot.js"


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def shot(v: Visit, name: str) -> None:
    """A screenshot for people to look at: /tmp/iot-<name>.png, and tests/screenshots like the other pages."""
    settle(v)
    page = v.page
    # The page never scrolls, its <main> does: the window is made as tall as the content for the picture.
    tall = page.evaluate("() => document.querySelector('header').offsetHeight + Math.max("
                         "...[...document.querySelectorAll('main, main > .col')].map(e => e.scrollHeight))")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": max(VIEWPORT["height"], min(int(tall) + 4, 4000))})
    try:
        page.screenshot(path=f"/tmp/iot-{name}.png", animations="disabled")
        v.screenshot(f"iot-{name}.png")
    finally:
        page.set_viewport_size(VIEWPORT)


@pytest.fixture(scope="module")
def tokens(demo_tokens: dict[str, str]) -> dict[str, str]:
    return demo_tokens


@pytest.fixture(scope="module")
def iot(site: Site, tokens: dict[str, str]) -> dict[str, Any]:
    """Devices of several types inside the demo district's grids: a waste container with twelve readings and one
    refused, a smoke detector that saw smoke, floods and a noise meter gone silent (the silence sweep, run as its
    timer would ten minutes on), an air-quality station online, a streetlight decommissioned."""
    from citybase.core.timeutil import utcnow
    from citybase.iot import service
    from citybase.storage.db import make_engine, make_sessionmaker

    tag = uuid.uuid4().hex[:6]
    grids = site.get_json("/api/v1/areas/geojson?level=grid")["features"]

    def inside(i: int) -> tuple[float, float]:
        ring = grids[(i * 7) % len(grids)]["geometry"]["coordinates"]
        while isinstance(ring[0][0], list):
            ring = ring[0]
        xs, ys = [p[0] for p in ring[:-1]], [p[1] for p in ring[:-1]]
        return sum(xs) / len(xs), sum(ys) / len(ys)

    plan = [("waste", f"waste-{tag}-1", "测试垃圾箱 1号"), ("smoke", f"smoke-{tag}-1", "测试烟感 301室"),
            ("flood", f"flood-{tag}-1", "测试积水点 甲"), ("flood", f"flood-{tag}-2", "测试积水点 乙"),
            ("noise", f"noise-{tag}-1", "测试噪声点"), ("aq", f"aq-{tag}-1", "测试空气站"),
            ("light", f"light-{tag}-1", "测试路灯"), ("waste", f"waste-{tag}-2", "测试垃圾箱 2号")]
    body = [{"device_id": d, "type": t, "lon": inside(i)[0], "lat": inside(i)[1], "model": "T-1", "name": n}
            for i, (t, d, n) in enumerate(plan)]
    made = call(site, tokens["admin"], "POST", "/api/v1/iot/devices", body)["created"]
    secret = {c["device_id"]: c["secret"] for c in made}

    now = datetime.now(UTC).replace(microsecond=0)
    waste, smoke = f"waste-{tag}-1", f"smoke-{tag}-1"
    readings = [{"t": iso(now - timedelta(minutes=5 * (11 - i))),
                 "v": {"fillingLevel": round(0.2 + 0.05 * i, 2), "temperature": 20 + i * 0.5}} for i in range(12)]
    readings.append({"t": iso(now - timedelta(seconds=30)), "v": {"fillingLevel": 1.5}})  # refused: out of range
    out = call(site, None, "POST", "/api/v1/iot/readings", [
        {"device": waste, "token": secret[waste], "readings": readings},
        {"device": f"aq-{tag}-1", "token": secret[f"aq-{tag}-1"], "t": iso(now), "v": {"pm25": 35, "pm10": 60}},
        {"device": f"waste-{tag}-2", "token": secret[f"waste-{tag}-2"], "t": iso(now), "v": {"fillingLevel": 0.3}},
        {"device": smoke, "token": secret[smoke], "t": iso(now), "v": {"smokeDetected": "yes", "batteryLevel": 0.9}}])
    assert out["accepted"] == 24 + 2 + 1 + 2 and out["refused"] == 1, out
    assert len(out["alarms_raised"]) == 1, out
    call(site, tokens["admin"], "POST", f"/api/v1/iot/devices/light-{tag}-1/decommission")

    engine = make_engine(site.database_url)
    try:
        with make_sessionmaker(engine)() as s, s.begin():
            gone = service.sweep_silent(session=s, now=utcnow() + timedelta(minutes=10))
    finally:
        engine.dispose()
    assert {f"flood-{tag}-1", f"flood-{tag}-2", f"noise-{tag}-1"} <= set(gone), gone
    return {"tag": tag, "waste": waste, "smoke": smoke, "alarm": out["alarms_raised"][0], "devices": [d for _, d, _ in plan]}


def wait_loads(v: Visit, key: str, before: str | None) -> None:
    v.page.wait_for_function(f"() => (document.body.dataset.{key} || '') !== '{before or ''}'")


def loads(v: Visit, key: str) -> str:
    return v.page.evaluate(f"() => document.body.dataset.{key} || ''")


# ---------------------------------------------------------------- the devices page


def test_staff_see_the_devices_on_the_map_in_the_list_and_their_health(visit: Callable[[str], Visit], site: Site,
                                                                       tokens: dict[str, str], iot: dict) -> None:
    everything = call(site, tokens["admin"], "GET", "/api/v1/iot/devices.geojson")["features"]
    offline = [f for f in everything if f["properties"]["state"] == "offline"]
    v = sign_in(visit, tokens["analyst"], "/iot")
    page = v.page
    assert page.locator("#nav-iot").is_visible() and "on" in (page.locator("#nav-iot").get_attribute("class") or "")
    assert page.locator("#nav-iot").inner_text() == "物联感知"
    assert v.wait_map_ready() not in ("error", "0")
    assert int(loads(v, "mapDevices")) == len(everything) >= len(iot["devices"])
    legend = {s: int(page.locator(f"#legend .row[data-state='{s}'] .n").inner_text())
              for s in ("online", "offline", "decommissioned")}
    assert legend["offline"] == len(offline) >= 3 and legend["decommissioned"] >= 1 and legend["online"] >= 3
    assert "离线" in page.locator("#legend").inner_text()
    assert page.locator("#open-alarms").inner_text().strip().isdigit()

    # the list: paged, newest ids searchable; each row links to its device
    assert page.locator("#devices tbody tr").count() == min(15, len(everything))
    before = loads(v, "listLoads")
    page.locator("#f-q").fill(iot["tag"])
    wait_loads(v, "listLoads", before)
    rows = page.locator("#devices tbody tr")
    assert rows.count() == len(iot["devices"])
    assert page.locator("#list-count").inner_text() == f"共 {len(iot['devices'])} 台"
    row = page.locator(f"#devices tr[data-device='{iot['waste']}']")
    assert "测试垃圾箱 1号" in row.inner_text() and "在线" in row.inner_text()

    # health: offline share by type and department, from /health
    flood = page.locator("#health tr[data-type='flood']")
    assert flood.count() >= 1 and "水务局" in flood.first.inner_text() and "%" in flood.first.inner_text()
    shot(v, "devices")

    # filter by state: the map and the list both
    before_map, before_list = loads(v, "mapLoads"), loads(v, "listLoads")
    page.locator("#f-state").select_option("offline")
    wait_loads(v, "mapLoads", before_map)
    wait_loads(v, "listLoads", before_list)
    assert int(loads(v, "mapDevices")) == len(offline)
    states = page.eval_on_selector_all("#devices tbody tr", "rs => rs.map(r => r.dataset.state)")
    assert states and set(states) == {"offline"}
    page.locator("#f-state").select_option("")
    page.locator("#f-type").select_option("waste")
    wastes = sum(1 for f in everything if f["properties"]["type"] == "waste")
    page.wait_for_function(f"() => document.body.dataset.mapDevices === '{wastes}'")  # after both changes
    page.wait_for_function("() => [...document.querySelectorAll('#devices tbody tr')].every(r => r.dataset.type === 'waste')")
    shot(v, "devices-waste")

    # open the device from its row
    row = page.locator(f"#devices tr[data-device='{iot['waste']}'] a.device")
    row.click()
    page.wait_for_url(re.compile(r"/iot/devices/" + re.escape(iot["waste"])))
    page.wait_for_function("() => document.body.dataset.ready === '1'")
    assert page.locator("#d-name").inner_text() == "测试垃圾箱 1号"
    assert_clean(v)


# ---------------------------------------------------------------- one device


def test_a_device_shows_its_latest_values_its_trend_and_a_refused_reading(visit: Callable[[str], Visit],
                                                                          tokens: dict[str, str], iot: dict) -> None:
    v = sign_in(visit, tokens["analyst"], f"/iot/devices/{iot['waste']}")
    page = v.page
    assert page.locator("#nav-iot.on").count() == 1
    assert "在线" in page.locator("#d-head").inner_text()
    assert "智能垃圾箱" in page.locator("#d-facts").inner_text()
    assert "urn:ngsi-ld:WasteContainer:" + iot["waste"] in page.locator("#d-facts").inner_text()
    fill = page.locator("#latest .tile[data-attr='fillingLevel']")
    assert fill.locator(".v").inner_text() == "75%"  # 0.75 of C62 (a ratio)
    assert fill.locator(".label").inner_text().startswith("满溢度")
    assert page.locator("#latest .tile[data-attr='temperature'] .v").inner_text() == "25.5 °C"
    for attr in ("fillingLevel", "temperature"):
        chart = page.locator(f"svg.chart[data-attr='{attr}']")
        assert chart.get_attribute("data-points") == "12"
        assert chart.locator("circle.pt").count() == 12
        assert chart.locator("path.line").get_attribute("d").count("L") == 11
    assert page.locator("svg.chart[data-attr='fillingLevel'] line.limit").count() == 1  # 满溢 above 90 %
    assert "90%" in page.locator("svg.chart[data-attr='fillingLevel'] .limit-label").text_content()

    dead = page.locator("#dead tbody tr[data-reason='out_of_range']")
    assert dead.count() == 1
    assert "超出有效范围" in dead.inner_text() and "fillingLevel" in dead.inner_text()
    assert '"fillingLevel": 1.5' in dead.locator("code.payload").inner_text()  # the reading refused, never its token
    assert page.locator("#alarms-empty").is_visible()
    v.wait_map_ready()
    shot(v, "device")
    assert_clean(v)


def test_an_enumerated_reading_and_its_alarm_on_the_device_page_without_buttons_for_a_reader(
        visit: Callable[[str], Visit], tokens: dict[str, str], iot: dict) -> None:
    v = sign_in(visit, tokens["analyst"], f"/iot/devices/{iot['smoke']}")
    page = v.page
    assert page.locator("#latest .tile[data-attr='smokeDetected'] .v").inner_text() == "有"
    assert page.locator("#latest .tile[data-attr='batteryLevel'] .v").inner_text() == "90%"
    assert page.locator("svg.chart[data-attr='smokeDetected'] rect.pt").count() == 1
    row = page.locator(f"#alarms tr[data-id='{iot['alarm']}']")
    assert row.get_attribute("data-state") == "active" and "烟感报警" in row.inner_text() and "紧急" in row.inner_text()
    assert row.locator("button").count() == 0  # an analyst reads; only admin, dispatcher and handler act
    v.wait_map_ready()
    shot(v, "device-smoke")
    assert_clean(v)


# ---------------------------------------------------------------- alarms


def test_a_dispatcher_acknowledges_and_clears_the_smoke_alarm(visit: Callable[[str], Visit], site: Site,
                                                              tokens: dict[str, str], iot: dict) -> None:
    # the incident loop opens an incident for the smoke alarm from the bus (ops-alarms); wait until it has
    deadline = time.monotonic() + 20
    while not (alarm := call(site, tokens["dispatcher"], "GET", f"/api/v1/iot/alarms/{iot['alarm']}"))["incident"]:
        assert time.monotonic() < deadline, "the smoke alarm became no incident"
        time.sleep(0.2)
    v = sign_in(visit, tokens["dispatcher"], "/iot/alarms")
    page = v.page
    assert page.locator("#tab-alarms.on").count() == 1 and page.locator("#nav-iot.on").count() == 1
    row = page.locator(f"#alarms tr[data-id='{iot['alarm']}']")
    assert row.get_attribute("data-severity") == "critical" and row.get_attribute("data-state") == "active"
    text = row.inner_text()
    assert "测试烟感 301室" in text and "烟感报警" in text and "有" in text and "紧急" in text and "待确认" in text
    assert shanghai(alarm["raised_at"]) in text  # shown in Asia/Shanghai
    link = row.locator("a.incident")
    assert alarm["incident"]["code"] in link.inner_text()
    assert link.get_attribute("href") == f"/ops/workbench#incident-{alarm['incident']['id']}"
    states = page.eval_on_selector_all("#alarms tbody tr", "rs => rs.map(r => r.dataset.state)")
    assert set(states) <= {"active", "acknowledged"}  # the default filter: not cleared
    open_before = int(page.locator("#open-alarms").inner_text())
    shot(v, "alarms")

    before = loads(v, "alarmLoads")
    with page.expect_response(lambda r: r.url.endswith(f"/alarms/{iot['alarm']}/acknowledge")):
        row.locator("button.ack").click()
    wait_loads(v, "alarmLoads", before)
    row = page.locator(f"#alarms tr[data-id='{iot['alarm']}']")
    assert row.get_attribute("data-state") == "acknowledged"
    assert "已确认" in row.inner_text() and "dispatcher" in row.inner_text()
    assert row.locator("button.ack").count() == 0 and row.locator("button.clear").count() == 1
    assert page.locator("#alarm-msg.ok").inner_text() == f"已确认告警 #{iot['alarm']}"
    assert call(site, tokens["dispatcher"], "GET", f"/api/v1/iot/alarms/{iot['alarm']}")["state"] == "acknowledged"
    shot(v, "alarms-acknowledged")

    before = loads(v, "alarmLoads")
    with page.expect_response(lambda r: r.url.endswith(f"/alarms/{iot['alarm']}/clear")):
        row.locator("button.clear").click()
    wait_loads(v, "alarmLoads", before)
    assert page.locator(f"#alarms tr[data-id='{iot['alarm']}']").count() == 0  # no longer open
    page.wait_for_function(f"() => document.getElementById('open-alarms').textContent !== '{open_before}'")
    assert int(page.locator("#open-alarms").inner_text() or 0) == open_before - 1
    before = loads(v, "alarmLoads")
    page.locator("#f-state").select_option("cleared")
    wait_loads(v, "alarmLoads", before)
    row = page.locator(f"#alarms tr[data-id='{iot['alarm']}']")
    assert row.get_attribute("data-state") == "cleared" and row.locator("button").count() == 0
    assert_clean(v)


def test_the_alarms_page_in_english_filters_by_severity(visit: Callable[[str], Visit], tokens: dict[str, str],
                                                        iot: dict) -> None:
    v = sign_in(visit, tokens["handler"], "/iot/alarms?lang=en")
    page = v.page
    assert page.locator("#nav-iot").inner_text() == "IoT" and page.locator("#tab-alarms").inner_text().startswith("Alarms")
    assert page.locator("#alarms thead").inner_text().split("\t")[0].strip() == "Severity"
    before = loads(v, "alarmLoads")
    page.locator("#f-severity").select_option("warning")
    wait_loads(v, "alarmLoads", before)
    sev = page.eval_on_selector_all("#alarms tbody tr", "rs => rs.map(r => r.dataset.severity)")
    assert sev and set(sev) == {"warning"}  # the devices gone silent
    assert "Device offline" in page.locator("#alarms tbody").inner_text() or HAN.search(page.locator("#alarms tbody").inner_text())
    assert page.locator("#alarms tbody button.ack").count() == len(sev)  # a handler may acknowledge
    shot(v, "alarms-en")
    assert_clean(v)


# ---------------------------------------------------------------- who sees the link; the roles agree with the API


def test_the_iot_link_is_for_staff_and_the_page_refuses_others(visit: Callable[[str], Visit],
                                                               tokens: dict[str, str]) -> None:
    v = sign_in(visit, tokens["citizen"], "/services")
    assert v.page.locator("#nav-iot").is_hidden()
    assert v.page.locator("#nav-services").is_visible()
    v.page.goto(v.page.url.split("/services")[0] + "/iot")
    v.page.wait_for_function("() => document.body.dataset.ready !== undefined")
    assert v.page.evaluate("() => document.body.dataset.ready") == "wrong-role"


def test_the_pages_know_the_roles_the_api_allows() -> None:
    from citybase.iot.router import OPERATORS, READERS
    from citybase.web.router import NAV_ROLES

    js = re.search(r"const OPERATORS = \[([^\]]*)\]", JS.read_text(encoding="utf-8"))
    assert js and [s.strip().strip('"') for s in js.group(1).split(",")] == list(OPERATORS)
    assert tuple(NAV_ROLES["/iot"]) == tuple(READERS)


def test_the_device_page_in_english(visit: Callable[[str], Visit], tokens: dict[str, str], iot: dict) -> None:
    v = sign_in(visit, tokens["analyst"], f"/iot/devices/{iot['waste']}?lang=en")
    page = v.page
    assert page.locator("html").get_attribute("lang") == "en"
    assert [t.strip().split(" ")[0] for t in page.locator("#device-page h3").all_inner_texts()] == [
        "Latest", "Trend", "Alarms", "Refused"]
    assert "online" in page.locator("#d-head").inner_text()
    assert page.locator("#latest .tile[data-attr='fillingLevel'] .v").inner_text() == "75%"
    assert page.locator("#dead tbody tr[data-reason='out_of_range'] .tag").inner_text() == "out of range"
    assert "outside its valid range" in page.locator("#dead tbody tr .reason").first.inner_text()  # the API's English
    v.wait_map_ready()
    shot(v, "device-en")
    assert_clean(v)
