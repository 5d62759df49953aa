"""The incident loop's pages in real headless Chromium: sign-in, the citizen's report (Open311), the
dispatcher's workbench with the 12345 hotline, the handler's task list — and a report going all the way
round: reported → seen in the queue → registered and dispatched → accepted and done → verified and closed →
looked up by the citizen. Refusals show the API's problem (detail and fix); English labels on request;
nothing leaves 127.0.0.1 and nothing is logged as an error."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest

from tests.web.conftest import VIEWPORT, Site, Visit, assert_clean

pytestmark = pytest.mark.browser

HAN = re.compile(r"[\u4e00-\u9fff]")
SHANGHAI = ZoneInfo("Asia/Shanghai")
LIGHTS = ("red", "yellow", "green", "grey")


# ---------------------------------------------------------------- helpers


def call(site: Site, token: str | None, method: str, path: str, body: dict | None = None) -> Any:
    """The platform's API as a script would call it (to set up and to check what the pages show)."""
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    req = urllib.request.Request(site.url(path), data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - our own 127.0.0.1 server
            return json.loads(r.read().decode())
    except urllib.error.HTTPError as e:
        raise AssertionError(f"{method} {path} → {e.code}: {e.read().decode()[:500]}") from e


def sign_in(visit: Callable[[str], Visit], token: str, path: str) -> Visit:
    """Open ``path`` signed out, land on /login, paste the token, and come back to ``path`` ready."""
    v = visit(path)
    page = v.page
    page.wait_for_url(re.compile(r"/login\?next="))
    assert page.locator("#need-login").is_visible()
    page.locator("#token").fill(token)
    page.locator("#sign-in").click()
    page.wait_for_url(re.compile(re.escape(path.split("?")[0]) + r"(\?|#|$)"))
    page.wait_for_function("() => document.body.dataset.ready !== undefined")
    assert page.evaluate("() => document.body.dataset.ready") == "1"
    return v


def expect_refusal(v: Visit, path_part: str, status: int) -> None:
    """A refusal the test provoked: its error status (and Chromium's console line about it) are expected."""
    assert any(b.startswith(str(status)) and path_part in b for b in v.bad_responses), v.bad_responses
    v.bad_responses = [b for b in v.bad_responses if not (b.startswith(str(status)) and path_part in b)]
    v.console_errors = [e for e in v.console_errors if not (str(status) in e and path_part in e)]


def shanghai(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def texts(v: Visit, selector: str) -> list[str]:
    return [t.strip() for t in v.page.locator(selector).all_inner_texts()]


def open_incident(v: Visit, incident_id: int) -> None:
    v.page.locator(f"#queue li[data-id='{incident_id}']").click()
    v.page.wait_for_function(f"() => document.body.dataset.detail === '{incident_id}'")


def do(v: Visit, action: str, *, button: str | None = None, **fields: str) -> None:
    """Fill a dispatcher action's form on the workbench, submit it and wait for the API's answer."""
    form = v.page.locator(f"form.act[data-action='{action}']")
    for name, value in fields.items():
        el = form.locator(f"[name='{name}']")
        if el.evaluate("e => e.tagName") == "SELECT":
            el.select_option(value)
        else:
            el.fill(value)
    target = form.locator(f"button[value='{button}']") if button else form.locator("button").first
    acts = v.page.evaluate("() => document.body.dataset.acts || '0'")
    with v.page.expect_response(lambda r: r.url.endswith(f"/{action}") and r.request.method == "POST"):
        target.click()
    v.page.wait_for_function(f"() => (document.body.dataset.acts || '0') !== '{acts}'")


def filter_queue(v: Visit, select: str, value: str) -> None:
    """Choose a filter of the workbench's queue and wait until the queue is shown again."""
    loads = v.page.evaluate("() => document.body.dataset.queueLoads")
    v.page.locator(select).select_option(value)
    v.page.wait_for_function(f"() => document.body.dataset.queueLoads !== '{loads}'")


def timeline_actions(v: Visit) -> list[str]:
    return v.page.eval_on_selector_all("#d-timeline li", "ls => ls.map(l => l.dataset.action)")


def settle(v: Visit) -> None:
    v.page.mouse.move(VIEWPORT["width"] - 5, VIEWPORT["height"] - 5)
    v.page.evaluate("() => document.fonts.ready")


@pytest.fixture(scope="module")
def tokens(demo_tokens: dict[str, str]) -> dict[str, str]:
    return demo_tokens


def handler_token(site: Site, tokens: dict[str, str], department_id: int) -> str:
    """The demo handler's token if the department is theirs, else a new handler of that department."""
    me = call(site, tokens["handler"], "GET", "/api/v1/me")
    if me["department_id"] == department_id:
        return tokens["handler"]
    user = call(site, tokens["admin"], "POST", "/api/v1/users", {
        "username": f"h-{uuid.uuid4().hex[:8]}", "display_name": "处置员", "roles": ["handler"],
        "department_id": department_id})
    return call(site, tokens["admin"], "POST", f"/api/v1/users/{user['id']}/tokens", {})["token"]


def find_incident(site: Site, token: str, text: str) -> dict:
    statuses = "received,registered,dispatched,handling,verifying,closed,rejected,merged"
    found = call(site, token, "GET", "/api/v1/ops/incidents?" + urlencode({"q": text, "status": statuses}))["items"]
    assert len(found) == 1, found
    return found[0]


# ---------------------------------------------------------------- sign-in


def test_pages_send_you_to_sign_in_and_the_token_says_who_you_are(visit, tokens) -> None:
    v = visit("/ops/workbench")
    page = v.page
    page.wait_for_url(re.compile(r"/login\?next=%2Fops%2Fworkbench"))
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator("#need-login").inner_text() == "请先登录"

    page.locator("#token").fill("cb_this_is_not_a_token")
    page.locator("#sign-in").click()
    page.wait_for_function("() => document.body.dataset.ready === 'invalid'")
    assert "令牌无效" in page.locator("#login-msg").inner_text()
    assert page.evaluate("() => localStorage.getItem('citybase.token')") is None
    expect_refusal(v, "/api/v1/me", 401)

    page.locator("#token").fill(tokens["dispatcher"])
    page.locator("#sign-in").click()
    page.wait_for_url(re.compile(r"/ops/workbench$"))
    page.wait_for_function("() => document.body.dataset.ready === '1'")
    assert page.locator("#who").inner_text() == "城运中心派单员"

    page.locator("#who").click()  # the badge leads back to the sign-in page, which says who you are
    page.wait_for_function("() => document.body.dataset.ready === 'signed-in'")
    assert page.locator("#me-name").inner_text() == "城运中心派单员"
    assert page.locator("#me-username").inner_text() == "dispatcher"
    assert page.locator("#me-roles").inner_text() == "dispatcher"
    settle(v)
    v.screenshot("ops-login.png")
    page.locator("#sign-out").click()
    assert page.evaluate("() => localStorage.getItem('citybase.token')") is None
    assert_clean(v)


def test_a_citizen_may_not_use_the_workbench(visit, tokens) -> None:
    v = visit("/ops/workbench")
    v.page.wait_for_url(re.compile(r"/login"))
    v.page.locator("#token").fill(tokens["citizen"])
    v.page.locator("#sign-in").click()
    v.page.wait_for_function("() => document.body.dataset.ready === 'wrong-role'")
    assert v.page.locator("#wrong-role h2").inner_text() == "当前账号的角色不能使用此页面"
    assert "citizen" in v.page.locator("#wrong-role").inner_text()
    assert_clean(v)


# ---------------------------------------------------------------- round the loop


def test_a_citizens_report_goes_round_the_loop(visit, site: Site, tokens) -> None:
    # The citizen: a service from the Open311 list, a description, a point on the map, a name and phone.
    services = site.get_json("/open311/v2/services.json")
    assert any(s["service_code"] == "03001" for s in services)
    c = sign_in(visit, tokens["citizen"], "/report")
    page = c.page
    c.wait_map_ready()
    groups = page.eval_on_selector_all("#r-service optgroup", "gs => gs.map(g => g.label)")
    assert len(groups) >= 5 and len(set(groups)) == len(groups)
    page.locator("#r-service").select_option("03001")
    marker = uuid.uuid4().hex[:6]
    description = f"小区门口人行道上有流动摊贩占道经营卖水果，行人只能走到马路上 编号{marker}"
    page.locator("#r-description").fill(description)
    with page.expect_response(lambda r: r.url.endswith("/open311/v2/requests.json")):
        page.locator("#r-send").click()  # no address and no point yet: Open311 refuses, the page says why
    refusal = page.locator("#report-msg.refused")
    assert "请求没有位置信息" in refusal.inner_text()  # the Chinese page gets Open311's refusal in Chinese
    assert "lat 和 long" in refusal.locator(".msg-fix").inner_text()
    expect_refusal(c, "/open311/v2/requests.json", 400)
    box = page.locator("#map").bounding_box()
    assert box is not None
    with page.expect_response(lambda r: "/api/v1/locate" in r.url):
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function("() => document.getElementById('r-point').dataset.lon")
    assert " · " in page.locator("#r-point").inner_text()  # street · community · grid
    page.locator("#r-name").fill("李女士")
    page.locator("#r-phone").fill("13800138000")
    assert "占道经营" in page.locator("#r-service-desc").inner_text()  # the service's description and time limits
    assert page.locator("path.cb-report-point").count() == 1
    settle(c)
    c.screenshot("ops-report-zh.png")
    with page.expect_response(lambda r: r.url.endswith("/open311/v2/requests.json")) as answer:
        page.locator("#r-send").click()
    assert answer.value.request.post_data and "api_key=" in answer.value.request.post_data
    request_id = page.locator("#r-request-id").inner_text()
    assert request_id
    assert page.locator("#l-id").input_value() == request_id  # ready to look up
    assert page.locator("#r-point").inner_text() == "未选点" and page.locator("path.cb-report-point").count() == 0

    inc = find_incident(site, tokens["dispatcher"], marker)
    assert inc["channel"] == "open311" and inc["category_code"] == "03001"
    assert request_id in (inc["code"], str(inc["id"]))

    # The dispatcher: the report is in the queue, lights in order; its detail, the map point, the timeline.
    d = sign_in(visit, tokens["dispatcher"], "/ops/workbench")
    wb = d.page
    item = wb.locator(f"#queue li[data-id='{inc['id']}']")
    assert item.count() == 1
    lights = wb.eval_on_selector_all("#queue li", "ls => ls.map(l => l.dataset.light)")
    assert [LIGHTS.index(x) for x in lights] == sorted(LIGHTS.index(x) for x in lights)
    assert item.locator(".dot").count() == 1
    open_incident(d, inc["id"])
    assert wb.locator("#d-code").inner_text() == inc["code"]
    assert wb.locator("#d-description").inner_text() == description
    assert wb.locator("#d-phone").inner_text() == "13800138000"  # the dispatcher calls back: in full
    assert "13800138000" in wb.locator("#d-reporters").inner_text()
    assert wb.locator("#d-why").inner_text() == inc["routing"]["why"]
    assert wb.locator("path.cb-incident").count() == 1
    assert wb.locator("path.cb-grid-outline").count() == int(d.wait_map_ready())
    assert wb.locator("img.leaflet-tile").count() == 0
    if wb.locator("#detail").get_attribute("data-status") == "received":
        do(d, "register", category_code="03001", priority="normal")
        assert wb.locator("#detail").get_attribute("data-status") == "registered"
        do(d, "dispatch")
    assert wb.locator("#detail").get_attribute("data-status") == "dispatched"
    assert timeline_actions(d)[:3] == ["receive", "register", "dispatch"]
    first = wb.locator("#d-timeline li").first.inner_text()
    assert "受理" in first and shanghai(inc["created_at"]) in first
    inc = call(site, tokens["dispatcher"], "GET", f"/api/v1/ops/incidents/{inc['id']}")
    facts = wb.locator("#d-facts").inner_text()
    assert shanghai(inc["deadline_at"]) in facts and re.search(r"剩余 \d", facts)
    assert wb.locator("#d-tasks tbody tr").count() == len(inc["tasks"]) >= 1
    settle(d)
    d.screenshot("ops-workbench-zh.png")

    # The handler of the department it went to: accept, call the reporter, a refused return, complete.
    h = sign_in(visit, handler_token(site, tokens, inc["main_department_id"]), "/ops/tasks")
    tp = h.page
    card = tp.locator(f"li.task[data-incident-id='{inc['id']}']")
    assert card.count() == 1 and card.get_attribute("data-status") == "pending"
    assert "13800138000" in card.inner_text()
    with tp.expect_response(lambda r: r.url.endswith("/accept")):
        card.locator("form[data-action='accept'] button").click()
    tp.wait_for_function(f"() => document.querySelector(\"li.task[data-incident-id='{inc['id']}']\")"
                         ".dataset.status === 'accepted'")
    assert "签收" in tp.locator("#tasks-msg").inner_text()
    card.locator("form[data-action='first-contact'] input[name='note']").fill("已电话联系李女士，约定下午到场")
    with tp.expect_response(lambda r: r.url.endswith("/first-contact")):
        card.locator("form[data-action='first-contact'] button").click()
    tp.wait_for_function("() => document.getElementById('tasks-msg').textContent.includes('先行联系')")
    with tp.expect_response(lambda r: r.url.endswith("/return")):
        card.locator("form[data-action='return'] button").click()  # no reason: the API refuses
    refusal = card.locator(".msg.refused")
    refusal.wait_for()
    # The API answers in the page's language: a Chinese page shows the Chinese problem (English on ?lang=en).
    assert "退单需要说明理由" in refusal.inner_text()
    assert "处理建议" in refusal.inner_text() and "请说明为何不属于本部门职责" in refusal.inner_text()
    assert "a return needs a reason" not in refusal.inner_text()
    expect_refusal(h, "/return", 422)
    settle(h)
    h.screenshot("ops-tasks-zh.png")
    card.locator("form[data-action='complete'] input[name='result']").fill("已劝离流动摊贩，人行道恢复通行")
    with tp.expect_response(lambda r: r.url.endswith("/complete")):
        card.locator("form[data-action='complete'] button").click()
    tp.wait_for_function("() => document.getElementById('tasks-msg').textContent.includes('办结')")
    assert card.count() == 0  # done: off the open list
    tp.locator("#show-done").click()
    tp.wait_for_function(f"() => document.querySelector(\"li.task[data-incident-id='{inc['id']}']\")")
    assert card.get_attribute("data-status") == "done"
    # Assisting departments (the street office leads 街面秩序 in its street, 城管执法局 assists) finish theirs.
    others = {t["department_id"] for t in inc["tasks"] if t["status"] == "pending"} - {inc["main_department_id"]}
    for dept in sorted(others):
        a = sign_in(visit, handler_token(site, tokens, dept), "/ops/tasks")
        theirs = a.page.locator(f"li.task[data-incident-id='{inc['id']}']")
        theirs.locator("form[data-action='complete'] input[name='result']").fill("配合执法，已完成")
        with a.page.expect_response(lambda r: r.url.endswith("/complete")):
            theirs.locator("form[data-action='complete'] button").click()
        a.page.wait_for_function("() => document.getElementById('tasks-msg').textContent.includes('办结')")
        assert_clean(a)

    # The dispatcher verifies on site and the incident closes; the timeline tells the whole story.
    wb.reload()  # the address still names the incident (#incident-<id>)
    wb.wait_for_function(f"() => document.body.dataset.detail === '{inc['id']}'")
    assert wb.locator("#detail").get_attribute("data-status") == "verifying"
    do(d, "verify", button="true", note="现场核查：摊贩已离开，人行道通畅")
    assert wb.locator("#detail").get_attribute("data-status") == "closed"
    steps = timeline_actions(d)
    for step in ("receive", "register", "dispatch", "accept", "first_contact", "complete", "verify", "close"):
        assert step in steps, steps
    assert "核查通过" in wb.locator("#d-timeline").inner_text()

    # The citizen looks the request up: closed, with the outcome.
    page.locator("#l-id").fill(request_id)
    page.locator("#l-go").click()
    page.wait_for_function("() => !document.getElementById('lookup').hidden")
    assert page.locator("#l-request-id").inner_text() == request_id
    assert page.locator("#lookup").get_attribute("data-status") == "closed"
    assert page.locator("#l-status").inner_text() == "已办结"
    assert page.locator("#l-notes").inner_text() not in ("", "–")
    settle(c)
    c.screenshot("ops-report-lookup-zh.png")
    for v in (c, d, h):
        assert_clean(v)


def test_a_hotline_call_is_taken_registered_and_dispatched_and_refusals_are_explained(visit, site: Site,
                                                                                        tokens) -> None:
    buildings = call(site, tokens["dispatcher"], "GET", "/api/v1/buildings?page_size=100")["items"]
    building = buildings[37]
    address = building["address"].replace("上海市徐汇区", "")
    d = sign_in(visit, tokens["dispatcher"], "/ops/workbench")
    page = d.page
    page.locator("#open-hotline").click()
    assert page.locator("dialog#hotline").is_visible()
    page.locator("#h-phone").fill("13911112222")
    page.locator("#h-name").fill("张先生")
    marker = uuid.uuid4().hex[:6]
    page.locator("#h-text").fill(f"门口路面坑洼破损，旁边还有垃圾堆放没人清理 来电{marker}")
    page.locator("#h-address").fill(address)
    with page.expect_response(lambda r: r.url.endswith("/api/v1/ops/hotline")):
        page.locator("#hotline-submit").click()
    inc = find_incident(site, tokens["dispatcher"], marker)
    page.wait_for_function(f"() => document.body.dataset.detail === '{inc['id']}'")
    assert not page.locator("dialog#hotline").is_visible()
    assert inc["code"] in page.locator("#act-msg").inner_text()
    assert page.locator(f"#queue li[data-id='{inc['id']}'].selected").count() == 1
    assert inc["channel"] == "hotline" and inc["address_text"] == address
    assert page.locator("#d-phone").inner_text() == "13911112222"
    if inc["suggested_code"]:
        suggested = page.locator("#d-suggested").inner_text()
        assert inc["suggested_code"] in suggested and "置信度" in suggested
        assert f"{round(inc['suggested_confidence'] * 100)}%" in suggested

    # Suspending needs a reason: the API's problem, readable.
    do(d, "suspend")
    msg = page.locator("#act-msg.refused")
    assert "操作被拒绝" in msg.inner_text()
    assert "挂起需要说明理由" in msg.inner_text() and "suspending needs a reason" not in msg.inner_text()
    assert "请说明工单在等待什么" in msg.locator(".msg-fix").inner_text()
    expect_refusal(d, "/suspend", 422)
    settle(d)
    d.screenshot("ops-workbench-refused.png")

    if inc["status"] == "received":
        do(d, "register", category_code="02003", priority="urgent")
        assert page.locator("#detail").get_attribute("data-status") == "registered"
        assert "紧急" in page.locator("#d-facts").inner_text()
        do(d, "dispatch")
    assert page.locator("#detail").get_attribute("data-status") == "dispatched"
    assert {"receive", "register", "dispatch"} <= set(timeline_actions(d))
    assert page.locator("#d-tasks tbody tr").count() >= 1
    assert page.locator("form.act[data-action='register']").is_hidden()  # registered and dispatched: no 立案

    # Suspend with a reason, then resume: the clock stops and runs again.
    do(d, "suspend", reason="等待燃气公司配合")
    assert "已挂起" in page.locator("#d-left").inner_text()
    do(d, "resume")
    assert timeline_actions(d)[-2:] == ["suspend", "resume"]

    # Filters: status, street (of the point), category.
    item = page.locator(f"#queue li[data-id='{inc['id']}']")
    filter_queue(d, "#f-status", "dispatched")
    assert set(page.eval_on_selector_all("#queue li", "ls => ls.map(l => l.dataset.status)")) == {"dispatched"}
    assert item.count() == 1
    street = call(site, None, "GET", f"/api/v1/locate?lon={building['lon']}&lat={building['lat']}")["street"]
    filter_queue(d, "#f-street", street["code"])
    assert item.count() == 1
    assert set(texts(d, "#queue li .street")) == {street["name"]}
    other = [o for o in page.eval_on_selector_all("#f-street option", "os => os.map(o => o.value)")
             if o and o != street["code"]][0]
    filter_queue(d, "#f-street", other)
    assert item.count() == 0
    filter_queue(d, "#f-street", "")
    category = call(site, tokens["dispatcher"], "GET", f"/api/v1/ops/incidents/{inc['id']}")["category_code"]
    filter_queue(d, "#f-category", category)
    assert item.count() == 1
    assert set(page.eval_on_selector_all("#queue li .cat", "cs => cs.map(c => c.textContent)")) == {
        next(c["name"] for c in call(site, None, "GET", "/api/v1/ops/categories") if c["code"] == category)}
    assert_clean(d)


# ---------------------------------------------------------------- English


def test_english_pages_show_english_labels(visit, site: Site, tokens) -> None:
    d = sign_in(visit, tokens["dispatcher"], "/ops/workbench?lang=en")
    page = d.page
    assert page.locator("html").get_attribute("lang") == "en"
    assert texts(d, "header nav a[id^='nav-']") == ["Map", "Report a problem", "Dispatch workbench", "Handler tasks",
                                                    "IoT", "Services", "My licences", "Verify a licence", "Sign in"]
    assert page.locator("#nav-workbench").get_attribute("href") == "/ops/workbench?lang=en"
    first = page.locator("#queue li").first
    open_incident(d, int(first.get_attribute("data-id") or 0))
    # The interface is English; what people wrote and proper names (categories, streets) stay as they are.
    # (a label's own text is its first line; the lines after it are its select's options)
    ui = [t.split("\n")[0] for t in texts(d, ".col-head h2, .filters label, #detail dt, #detail h3, #actions h2, "
                                              "form.act button, #detail .badge, #queue li .badge, #queue li .left, "
                                              "#open-hotline")]
    ui += page.eval_on_selector_all("form.act:not([hidden]) input", "is => is.map(i => i.placeholder)")
    assert ui and not [t for t in ui if HAN.search(t)], [t for t in ui if HAN.search(t)]
    assert "Open incidents" in page.locator(".col-head h2").inner_text()
    assert re.search(r"(left|overdue|clock not started|suspended)$", texts(d, "#queue li .left")[0])
    settle(d)
    d.screenshot("ops-workbench-en.png")
    assert_clean(d)

    r = sign_in(visit, tokens["citizen"], "/report?lang=en")
    r.wait_map_ready()
    labels = texts(r, "#report-form label, .report-form h2, #r-send, #l-go")
    assert labels and not [t for t in labels if HAN.search(t.split("\n")[0])]
    assert "Report a problem" in labels
    settle(r)
    r.screenshot("ops-report-en.png")
    assert_clean(r)

    # A 违法建筑 report goes to 城管执法局 (no street office leads 施工管理), the demo handler's department.
    building = call(site, tokens["dispatcher"], "GET", "/api/v1/buildings?page_size=100")["items"][71]
    inc = call(site, tokens["dispatcher"], "POST", "/api/v1/ops/incidents", {
        "description": "楼顶有人违章搭建阳光房，已经施工三天了", "category_code": "04006",
        "lon": building["lon"], "lat": building["lat"]})["incident"]
    assert inc["status"] == "dispatched"
    h = sign_in(visit, handler_token(site, tokens, inc["main_department_id"]), "/ops/tasks?lang=en")
    assert "My department's tasks" in h.page.locator(".col-head h2").inner_text()
    card = h.page.locator(f"li.task[data-incident-id='{inc['id']}']")
    assert card.count() == 1
    assert texts(h, f"li.task[data-incident-id='{inc['id']}'] form.act button") == [
        "Accept", "First contact", "Request extension", "Return", "Complete"]
    ui = texts(h, ".seg button, li.task form.act button, li.task dt, li.task .badge, li.task .tag, li.task .left")
    ui += h.page.eval_on_selector_all("li.task input", "is => is.map(i => i.placeholder)")
    assert not [t for t in ui if HAN.search(t)], [t for t in ui if HAN.search(t)]
    # A refusal on an English page is in English, from the API's problem (detail and fix).
    with h.page.expect_response(lambda r: r.url.endswith("/return")):
        card.locator("form[data-action='return'] button").click()  # no reason: the API refuses
    refusal = card.locator(".msg.refused")
    refusal.wait_for()
    assert "a return needs a reason" in refusal.inner_text()
    assert "How to fix" in refusal.inner_text() and "Say why this is not your department's case" in refusal.inner_text()
    assert not HAN.search(refusal.inner_text()), refusal.inner_text()
    expect_refusal(h, "/return", 422)
    settle(h)
    h.screenshot("ops-tasks-en.png")
    assert_clean(h)


# ---------------------------------------------------------------- side paths


def test_an_extension_is_requested_by_the_handler_and_approved_by_the_dispatcher(visit, site: Site, tokens) -> None:
    building = call(site, tokens["dispatcher"], "GET", "/api/v1/buildings?page_size=100")["items"][83]
    inc = call(site, tokens["dispatcher"], "POST", "/api/v1/ops/incidents", {
        "description": "小区内有住户加盖违建，挡住了消防通道", "category_code": "04006",
        "lon": building["lon"], "lat": building["lat"]})["incident"]
    h = sign_in(visit, handler_token(site, tokens, inc["main_department_id"]), "/ops/tasks")
    card = h.page.locator(f"li.task[data-incident-id='{inc['id']}']")
    form = card.locator("form[data-action='extension']")
    form.locator("input[name='days']").fill("5")
    form.locator("input[name='reason']").fill("需规划部门先行认定违建性质")
    with h.page.expect_response(lambda r: r.url.endswith("/extension")):
        form.locator("button").click()
    h.page.wait_for_function("() => document.getElementById('tasks-msg').textContent.includes('申请延期')")
    assert "申请延期 5 天：需规划部门先行认定违建性质" in card.inner_text()
    assert_clean(h)

    d = sign_in(visit, tokens["dispatcher"], f"/ops/workbench#incident-{inc['id']}")
    d.page.wait_for_function(f"() => document.body.dataset.detail === '{inc['id']}'")
    assert "5" in d.page.locator("#d-extension").inner_text()
    before = call(site, tokens["dispatcher"], "GET", f"/api/v1/ops/incidents/{inc['id']}")["deadline_at"]
    do(d, "extension-decision", button="true", note="同意延期")
    after = call(site, tokens["dispatcher"], "GET", f"/api/v1/ops/incidents/{inc['id']}")["deadline_at"]
    assert after > before
    assert shanghai(after) in d.page.locator("#d-facts").inner_text()
    assert d.page.locator("#d-extension").count() == 0
    assert d.page.locator("form.act[data-action='extension-decision']").is_hidden()
    assert timeline_actions(d)[-2:] == ["extension_requested", "extension_approved"]
    assert_clean(d)


def test_the_dispatcher_rejects_one_report_and_merges_a_duplicate(visit, site: Site, tokens) -> None:
    items = call(site, tokens["dispatcher"], "GET", "/api/v1/buildings?page_size=200")["items"]
    made = []
    for i, b in enumerate((items[120], items[150], items[180])):
        made.append(call(site, tokens["dispatcher"], "POST", "/api/v1/ops/incidents", {
            "description": f"门口路面坑洼破损，旁边还有垃圾堆放 第{i + 1}次反映", "lon": b["lon"], "lat": b["lat"],
            "reporter_phone": f"1380000100{i}"})["incident"])
    assert [m["status"] for m in made] == ["received"] * 3  # unsure suggestions wait for the dispatcher
    d = sign_in(visit, tokens["dispatcher"], "/ops/workbench")
    page = d.page

    open_incident(d, made[0]["id"])
    do(d, "reject", reason="经核实为私人小区内部道路，不属于城市管理范围")
    assert page.locator("#detail").get_attribute("data-status") == "rejected"
    assert timeline_actions(d)[-1] == "reject"
    assert "不属于城市管理范围" in page.locator("#d-timeline").inner_text()
    assert page.locator(f"#queue li[data-id='{made[0]['id']}']").count() == 0  # no longer open

    open_incident(d, made[1]["id"])
    do(d, "merge", into=made[2]["code"])
    assert page.locator("#detail").get_attribute("data-status") == "merged"
    assert made[2]["code"] in page.locator("#d-timeline").inner_text()
    open_incident(d, made[2]["id"])
    assert "重复 1 次" in page.locator(".detail-head").inner_text()
    assert timeline_actions(d)[-1] == "absorb"
    assert_clean(d)
