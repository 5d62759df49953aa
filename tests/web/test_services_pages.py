"""一网通办's pages in headless Chromium: a citizen applies for 新生儿出生一件事 in one prefilled form (bad input
explained beside each field, licence-proven materials with consent), follows it on the home page, and the
卫健委 clerk accepts it on the workbench."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from citybase.demo.services import load_services_demo
from citybase.storage.db import make_engine
from tests.web.conftest import Site, Visit, assert_clean
from tests.web.test_ops_pages import expect_refusal, settle, sign_in


@pytest.fixture(scope="module")
def tokens(site: Site, demo_tokens: dict[str, str]) -> dict[str, str]:
    engine = make_engine(site.database_url)
    try:
        return {**demo_tokens, **load_services_demo(engine, site.data_dir)}
    finally:
        engine.dispose()


def test_a_citizen_applies_for_a_newborn_and_the_clerk_accepts_it(visit: Callable[[str], Visit], tokens) -> None:
    v = sign_in(visit, tokens["citizen"], "/services")
    page = v.page
    assert page.locator("#bundles article").count() == 6
    newborn = page.locator("article[data-bundle='newborn']")
    assert "13" in newborn.inner_text()  # the promised working days (critical path)
    assert page.locator("#licences li[data-type='id_card']").count() == 1  # 我的证照, from the licence library
    settle(v)
    v.screenshot("services-home.png")
    newborn.locator("a.button").click()
    page.wait_for_url("**/services/apply?id=*")
    page.wait_for_function("() => document.body.dataset.ready === '1'")
    assert page.locator(".sv-field.prefilled").count() >= 4
    assert page.locator("#f-applicant_name").input_value()
    assert page.locator(".sv-mats li[data-key='licence:id_card'] .proof").count() == 1

    # submit at once: every missing field and material is named beside it, in Chinese
    with page.expect_response(lambda r: r.url.endswith("/submit")):
        page.locator("#submit").click()
    page.wait_for_function("() => document.body.dataset.step === 'refused'")
    expect_refusal(v, "/submit", 422)
    err = page.locator(".sv-field[data-field='child_name'] .err").inner_text()
    assert "新生儿姓名" in err
    assert page.locator(".sv-mats li.bad[data-key='licence:id_card']").count() == 1
    settle(v)
    v.screenshot("services-apply-errors.png")

    page.locator("#f-child_name").fill("王小宝")
    page.locator("#f-child_sex").select_option("女")
    page.locator("#f-child_birth_date").fill("2026-11-20")
    page.locator("#f-birth_hospital").fill("复旦大学附属中山医院")
    page.locator("#f-mother_name").fill("李梅")
    page.locator("#f-father_name").fill("王强")
    page.locator("#f-bank_account").fill("6222020200112233445")
    for box in page.locator("input.consent").all():
        box.check()
    for box in page.locator("input.attach").all():
        box.check()
    with page.expect_response(lambda r: r.url.endswith("/submit")):
        page.locator("#submit").click()
    page.wait_for_function("() => document.body.dataset.step === 'submitted'")
    page.locator("#to-home").click()
    page.wait_for_function("() => document.body.dataset.detail !== undefined")
    assert page.locator("#parts li").count() == 6
    assert page.locator("#parts li[data-item='XH-WJW-001'][data-status='pending']").count() == 1
    assert page.locator("#exempted li").count() >= 3
    assert page.locator("#licences li[data-type='birth_certificate']").count() == 0  # issued once 卫健委 approves
    settle(v)
    v.screenshot("services-my-application.png")
    assert_clean(v)

    w = sign_in(visit, tokens["clerk-wjw"], "/services/workbench")
    wp = w.page
    item = wp.locator("#queue li[data-item='XH-WJW-001']").first
    item.click()
    wp.wait_for_function("() => document.body.dataset.open !== undefined")
    assert wp.locator("#kpis div").count() == 10
    with wp.expect_response(lambda r: r.url.endswith("/accept")):
        wp.locator("#acts button[data-action='accept']").click()
    wp.wait_for_selector("#acts button[data-action='review']")
    assert wp.locator("#acts button[data-action='request-correction']").count() == 1
    settle(w)
    w.screenshot("services-workbench.png")
    assert_clean(w)


def test_english_labels_on_the_services_home(visit: Callable[[str], Visit], tokens) -> None:
    v = sign_in(visit, tokens["citizen"], "/services?lang=en")
    assert "Life and business events" in v.page.locator("h2").first.inner_text()
    assert_clean(v)


def test_a_finished_application_is_rated_and_a_bad_rating_shows_its_rectification(visit, site: Site, tokens) -> None:
    from tests.web.test_ops_pages import call

    base = "/api/v1/services/applications"
    app = call(site, tokens["citizen"], "POST", base, {"item": "XH-GA-007"})
    call(site, tokens["citizen"], "PATCH", f"{base}/{app['id']}", {"consent": ["id_card"]})
    app = call(site, tokens["citizen"], "POST", f"{base}/{app['id']}/submit")
    part = app["parts"][0]["id"]
    for action in ("accept", "review", "approve", "complete"):
        app = call(site, tokens["clerk-ga"], "POST", f"{base}/{app['id']}/parts/{part}/{action}", {})
    assert app["status"] == "done"
    v = sign_in(visit, tokens["citizen"], f"/services?id={app['id']}")
    page = v.page
    page.wait_for_function(f"() => document.body.dataset.detail === '{app['id']}'")
    page.locator("#rate-form input[value='2']").check()
    page.locator("#rate-form input[name='comment']").fill("窗口告知不清楚")
    with page.expect_response(lambda r: r.url.endswith("/rating")):
        page.locator("#rate-form button[type='submit']").click()
    page.wait_for_selector("#rectification[data-status='open']")
    assert "不满意" in page.locator("#rating").inner_text()
    settle(v)
    v.screenshot("services-rated.png")
    assert_clean(v)


def test_the_window_clerk_files_for_a_person_at_the_counter(visit, site: Site, tokens) -> None:
    from tests.web.test_ops_pages import call

    person = call(site, tokens["dataofficer"], "GET", "/api/v1/persons?page=3&page_size=1")["items"][0]
    v = sign_in(visit, tokens["window"], "/services/apply?item=XH-GA-007&counter=1")
    page = v.page
    assert page.locator("#counter").is_visible()
    page.locator("#counter-person").fill(str(person["id"]))
    page.locator("#counter button[type='submit']").click()
    page.wait_for_function("() => document.body.dataset.step === 'started'")
    assert page.locator("#f-applicant_name").input_value() == person["name"]
    assert "综合窗口" in page.locator("#apply-title").inner_text()
    page.locator("input.consent").first.check()
    with page.expect_response(lambda r: r.url.endswith("/submit")):
        page.locator("#submit").click()
    page.wait_for_function("() => document.body.dataset.step === 'submitted'")
    settle(v)
    v.screenshot("services-counter.png")
    assert_clean(v)
