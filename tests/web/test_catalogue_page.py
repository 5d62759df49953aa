"""事项目录管理 in headless Chromium: an admin edits an item (name, committed time limit, fee) and a 一件事 bundle
(its members and dependencies) and sees each new version, what changed and the new critical path; a bad
bundle is explained beside the form; a non-admin gets no edit access."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from tests.web.conftest import Visit, assert_clean
from tests.web.test_ops_pages import call, expect_refusal, settle, sign_in


@pytest.fixture(scope="module")
def tokens(services_demo_tokens: dict[str, str]) -> dict[str, str]:
    return services_demo_tokens


def test_an_admin_edits_an_item_and_a_bundle_and_sees_the_new_versions(visit: Callable[[str], Visit], site, tokens):  # noqa: ANN001
    before = call(site, tokens["admin"], "GET", "/api/v1/services/items/XH-RS-007")
    v = sign_in(visit, tokens["admin"], "/services/catalogue")
    page = v.page
    assert page.locator("#cat-list li[data-kind='item']").count() >= 80
    page.locator("#cat-filter").fill("XH-RS-007")
    page.locator("#cat-list li[data-code='XH-RS-007']").click()
    page.wait_for_function("() => document.body.dataset.open === 'item:XH-RS-007'")
    page.locator("#f-name").fill(before["name"] + "（修订）")
    page.locator("#f-committed_days").fill("0")
    page.locator("#f-fee").fill("12.5")
    page.locator("#save-item").click()
    page.wait_for_selector("#cat-msg.ok")
    new = before["current_version"] + 1
    assert page.locator("#current-version").inner_text() == f"当前第 {new} 版"
    latest = page.locator(f"#versions > li[data-version='{new}']")
    changes = latest.locator(".cat-changes").inner_text()
    assert "名称" in changes and "（修订）" in changes and "收费（元）" in changes and "12.5" in changes
    got = call(site, tokens["admin"], "GET", "/api/v1/services/items/XH-RS-007")
    assert (got["version"], got["fee"], got["committed_days"]) == (new, 12.5, 0)
    assert got["form"] == before["form"]  # the JSON of the other fields went back as it was
    settle(v)
    v.screenshot("catalogue-item.png")

    # a bundle: 医保 no longer waits for 退休审批; a new member waits for 养老金
    page.locator("#cat-filter").fill("")
    page.locator("#tab-bundles").click()
    page.locator("#cat-list li[data-code='retirement']").click()
    page.wait_for_function("() => document.body.dataset.open === 'bundle:retirement'")
    assert page.locator("#critical-path").inner_text() == "XH-RS-020 → XH-YB-020"
    assert page.locator("#promised").inner_text() == "承诺 13 个工作日"
    bundle = call(site, tokens["admin"], "GET", "/api/v1/services/bundles/retirement")
    row = page.locator("#members tr").filter(has=page.locator("input.m-item[value='XH-YB-020']"))
    row.locator("input.m-after").fill("")
    page.locator("#add-member").click()
    page.locator("#members tr").last.locator("input.m-item").fill("XH-RS-007")
    page.locator("#members tr").last.locator("input.m-after").fill("XH-RS-021")
    page.locator("#save-bundle").click()
    page.wait_for_selector("#cat-msg.ok")
    assert page.locator("#current-version").inner_text() == f"当前第 {bundle['version'] + 1} 版"
    changes = page.locator(f"#versions > li[data-version='{bundle['version'] + 1}'] .cat-changes").inner_text()
    assert "新增 XH-RS-007" in changes and "XH-YB-020 的依赖：XH-RS-020 → 无" in changes
    assert page.locator("#critical-path").inner_text() == "XH-RS-020"
    assert page.locator("#promised").inner_text() == "承诺 10 个工作日"
    settle(v)
    v.screenshot("catalogue-bundle.png")

    # a cycle is refused beside the form, in Chinese, and nothing is stored
    page.locator("#members tr").first.locator("input.m-after").fill("XH-RS-020")
    with page.expect_response(lambda r: r.url.endswith("/bundles/retirement") and r.request.method == "PUT"):
        page.locator("#save-bundle").click()
    page.wait_for_selector("#bundle-msg.refused")
    assert "循环" in page.locator("#bundle-msg").inner_text()
    expect_refusal(v, "/bundles/retirement", 422)
    assert call(site, tokens["admin"], "GET", "/api/v1/services/bundles/retirement")["version"] == bundle["version"] + 1
    settle(v)
    v.screenshot("catalogue-bundle-cycle.png")
    page.locator("#lang-en").click()
    page.wait_for_function("() => document.body.dataset.ready === '1'")
    assert page.locator("#tab-bundles").inner_text() == "Bundles (一件事)"
    assert_clean(v)


def test_a_non_admin_gets_no_edit_access(visit: Callable[[str], Visit], tokens) -> None:
    v = visit("/services/catalogue")
    page = v.page
    page.wait_for_url(re.compile(r"/login\?next="))
    page.locator("#token").fill(tokens["citizen"])
    page.locator("#sign-in").click()
    page.wait_for_url(re.compile(r"/services/catalogue"))
    page.wait_for_function("() => document.body.dataset.ready === 'wrong-role'")
    assert page.locator("#wrong-role").is_visible()
    assert page.locator("#save-item, #save-bundle, #cat-list li").count() == 0
    settle(v)
    v.screenshot("catalogue-no-access.png")
    assert_clean(v)
