"""一网通办's pages in headless Chromium: a citizen applies for 新生儿出生一件事 in one prefilled form (bad input
explained beside each field, licence-proven materials with consent, a file uploaded for each material to
bring), follows it on the home page, and the 卫健委 clerk sees and downloads the files and accepts it on the
workbench; a window clerk files at the counter, uploading one material and checking another's original."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

import pytest

from citybase.demo.documents import one_page_pdf
from citybase.storage.db import make_engine
from tests.web.conftest import Site, Visit, assert_clean
from tests.web.test_ops_pages import expect_refusal, settle, sign_in


@pytest.fixture(scope="module")
def tokens(services_demo_tokens: dict[str, str]) -> dict[str, str]:
    return services_demo_tokens


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
    assert page.locator("input.attach, input.verify").count() == 0  # no checkbox attaches anything online
    # a file that is no PDF, JPEG, PNG or OFD is refused beside its material, in Chinese
    record = page.locator(".sv-mats li[data-key='applicant:住院分娩记录']")
    with page.expect_response(lambda r: "/materials/" in r.url and r.status == 415):
        record.locator("input.upload").set_input_files(
            {"name": "记录.pdf", "mimeType": "application/pdf", "buffer": b"MZ not a pdf"})
    assert "不是 PDF、JPEG、PNG 或 OFD 文件" in record.locator(".err").inner_text()
    expect_refusal(v, "/materials/", 415)
    for key, name in UPLOADS.items():
        li = page.locator(f".sv-mats li[data-key='{key}']")
        li.locator("input.upload").set_input_files(
            {"name": name, "mimeType": "application/pdf", "buffer": one_page_pdf(key)})
        page.wait_for_selector(f".sv-mats li[data-key='{key}'][data-status='uploaded'] .sv-files li")
        assert name in li.locator(".sv-files").inner_text()
        assert f"PDF · {len(one_page_pdf(key))} B" in li.locator(".sv-files").inner_text()  # its type and size
        assert "已上传" in li.locator(".up-status").inner_text()
    # a file removed and uploaded again
    photo = page.locator(".sv-mats li[data-key='applicant:新生儿证件照']")
    with page.expect_response(lambda r: r.request.method == "DELETE"):
        photo.locator(".sv-files button.remove").click()
    page.wait_for_selector(".sv-mats li[data-key='applicant:新生儿证件照'][data-status='to_bring']")
    photo.locator("input.upload").set_input_files(
        {"name": UPLOADS["applicant:新生儿证件照"], "mimeType": "image/png", "buffer": one_page_pdf("photo")})
    page.wait_for_selector(".sv-mats li[data-key='applicant:新生儿证件照'][data-status='uploaded']")
    settle(v)
    v.screenshot("services-apply-uploads.png")
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
    listed = wp.locator("#wb-files").inner_text()
    assert all(name in listed for name in UPLOADS.values()) and "住院分娩记录" in listed
    with wp.expect_download() as dl:
        wp.locator("#wb-files a.file-name", has_text=UPLOADS["applicant:住院分娩记录"]).click()
    assert dl.value.suggested_filename == UPLOADS["applicant:住院分娩记录"]  # the Chinese name, kept
    assert open(dl.value.path(), "rb").read().startswith(b"%PDF-")
    wp.locator("#wb-files").scroll_into_view_if_needed()
    settle(w)
    w.screenshot("services-workbench-files.png")
    wp.locator("#acts").scroll_into_view_if_needed()
    with wp.expect_response(lambda r: r.url.endswith("/accept")):
        wp.locator("#acts button[data-action='accept']").click()
    wp.wait_for_selector("#acts button[data-action='review']")
    assert wp.locator("#acts button[data-action='request-correction']").count() == 1
    settle(w)
    w.screenshot("services-workbench.png")
    assert_clean(w)


UPLOADS = {"applicant:住院分娩记录": "住院分娩记录（扫描件）.pdf", "applicant:新生儿证件照": "新生儿证件照.pdf",
           "licence:marriage_certificate": "结婚证.pdf"}


def test_a_window_clerk_uploads_a_scan_and_checks_an_original_at_the_counter(visit, site: Site, tokens) -> None:
    from sqlalchemy import text

    engine = make_engine(site.database_url)
    try:
        with engine.connect() as c:
            pid = c.scalar(text("SELECT max(id) FROM persons WHERE household_no IS NOT NULL"))
    finally:
        engine.dispose()
    v = sign_in(visit, tokens["window"], "/services/apply?bundle=newborn&counter=1")
    page = v.page
    page.locator("#counter-person").fill(str(pid))
    page.locator("#counter button[type='submit']").click()
    page.wait_for_selector("#wizard:not([hidden])")
    record = page.locator(".sv-mats li[data-key='applicant:住院分娩记录']")
    record.locator("input.verify").check()  # 原件已核验: the paper original seen at the counter
    photo = page.locator(".sv-mats li[data-key='applicant:新生儿证件照']")
    photo.locator("input.upload").set_input_files(
        {"name": "窗口扫描-证件照.pdf", "mimeType": "application/pdf", "buffer": one_page_pdf("counter scan")})
    page.wait_for_selector(".sv-mats li[data-key='applicant:新生儿证件照'][data-status='uploaded']")
    with page.expect_response(lambda r: r.request.method == "PATCH"):
        page.locator("#save").click()
    page.wait_for_function("() => document.body.dataset.step === 'saved'")
    assert page.locator(".sv-mats li[data-key='applicant:住院分娩记录'][data-status='verified']").count() == 1
    assert "窗口扫描-证件照.pdf" in page.locator(".sv-mats li[data-key='applicant:新生儿证件照'] .sv-files").inner_text()
    settle(v)
    v.screenshot("services-counter-uploads.png")
    assert_clean(v)


def test_a_correction_is_answered_with_a_new_file_on_the_home_page(visit, site: Site, tokens) -> None:
    import httpx

    from tests.web.test_ops_pages import call

    base = "/api/v1/services/applications"
    app = call(site, tokens["citizen"], "POST", base, {"bundle": "newborn"})
    call(site, tokens["citizen"], "PATCH", f"{base}/{app['id']}",
         {"form": {"child_name": "王小宝", "child_sex": "女", "child_birth_date": "2026-11-20",
                   "birth_hospital": "复旦大学附属中山医院", "mother_name": "李梅", "father_name": "王强",
                   "bank_account": "6222020200112233445"},
          "consent": ["id_card", "household_register"]})
    for key, name in UPLOADS.items():
        r = httpx.post(site.url(f"{base}/{app['id']}/materials/{quote(key, safe='')}"),
                       headers={"Authorization": f"Bearer {tokens['citizen']}"},
                       files={"file": (name, one_page_pdf(key), "application/pdf")})
        assert r.status_code == 201, r.text
    app = call(site, tokens["citizen"], "POST", f"{base}/{app['id']}/submit")
    part = next(p for p in app["parts"] if p["item_code"] == "XH-WJW-001")["id"]
    call(site, tokens["clerk-wjw"], "POST", f"{base}/{app['id']}/parts/{part}/accept", {})
    call(site, tokens["clerk-wjw"], "POST", f"{base}/{app['id']}/parts/{part}/request-correction",
         {"reason": "分娩记录扫描不清晰，请重新上传"})

    v = sign_in(visit, tokens["citizen"], f"/services?id={app['id']}&lang=en")
    page = v.page
    page.wait_for_function(f"() => document.body.dataset.detail === '{app['id']}'")
    box = page.locator("#correct-form li[data-key='applicant:住院分娩记录']")
    assert UPLOADS["applicant:住院分娩记录"] in box.inner_text() and "Upload a file" in box.inner_text()
    with page.expect_response(lambda r: r.request.method == "DELETE"):
        box.locator(".sv-files button.remove").click()
    page.wait_for_function("() => !document.querySelector(\"#correct-form li[data-key='applicant:住院分娩记录'] .sv-files li\")")
    # sending the correction with the required record gone is refused, in English, saying what to upload
    with page.expect_response(lambda r: r.url.endswith("/correct") and r.status == 422):
        page.locator("#correct-form button[type='submit']").click()
    page.wait_for_selector("#correct-form .msg.refused")
    assert "is required: upload it" in page.locator("#correct-form .msg").inner_text()
    expect_refusal(v, "/correct", 422)
    box.locator("input.upload").set_input_files(
        {"name": "分娩记录（更正）.pdf", "mimeType": "application/pdf", "buffer": one_page_pdf("corrected")})
    page.wait_for_selector("#correct-form li[data-key='applicant:住院分娩记录'] .sv-files li")
    assert "Uploaded 分娩记录（更正）.pdf" in box.locator(".up-status").inner_text()
    settle(v)
    v.screenshot("services-correction-upload.png")
    with page.expect_response(lambda r: r.url.endswith("/correct") and r.status == 200):
        page.locator("#correct-form button[type='submit']").click()
    page.wait_for_selector("#parts li[data-item='XH-WJW-001'][data-status='accepted']")
    assert_clean(v)
    files = call(site, tokens["clerk-wjw"], "GET", f"{base}/{app['id']}/files")
    assert [f["stage"] for f in files if f["material_key"] == "applicant:住院分娩记录"] == ["correction"]


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
