"""The licence pages in real headless Chromium: the holder's 我的证照 with its QR code and use log, and the
verifier that checks a licence's Ed25519 signature with WebCrypto while the browser is offline, then its status
online; and `citybase licences verify` against the same served city."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.web.conftest import Site, assert_clean
from tests.web.test_ops_pages import call, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def tokens(demo_tokens):
    return demo_tokens


def citizen_licence(site: Site, tokens, type_key: str = "household_register") -> dict:
    page = call(site, tokens["citizen"], "GET", f"/api/v1/licences?type={type_key}")
    assert page["items"], "the demo citizen holds no such licence"
    return page["items"][0]


def test_the_holder_sees_their_licences_their_qr_code_and_who_used_them(visit, site: Site, tokens) -> None:
    lic = citizen_licence(site, tokens)
    call(site, tokens["clerk"], "POST", f"/api/v1/licences/{lic['id']}/uses",
         {"purpose": "新生儿出生一件事：户口登记", "application_ref": "APP-WEB-1", "consent_ref": "CONSENT-WEB-1"})
    v = sign_in(visit, tokens["citizen"], "/licences/mine")
    page = v.page
    cards = page.locator(".lic-card")
    assert cards.count() == call(site, tokens["citizen"], "GET", "/api/v1/licences")["total"]
    card = page.locator(f"#licence-{lic['id']}")
    assert lic["identifier"] in card.inner_text() and "户口簿" in card.inner_text()
    card.locator("button.primary").click()
    page.wait_for_function(f"() => document.querySelector('#licence-{lic['id']} .qr img')?.naturalWidth > 0")
    uses = page.locator("#uses tbody").inner_text()
    assert "APP-WEB-1" in uses and "CONSENT-WEB-1" in uses and "户口登记" in uses
    v.screenshot("licences-mine.png")
    assert_clean(v)


def test_the_verifier_checks_a_signature_offline_and_the_status_online(visit, site: Site, tokens) -> None:
    lic = citizen_licence(site, tokens, "id_card")
    token = call(site, tokens["citizen"], "GET", f"/api/v1/licences/{lic['id']}/token")["token"]
    v = visit("/licences/verify")
    page = v.page
    page.wait_for_function("() => document.body.dataset.ready === '1'")
    page.context.set_offline(True)
    asked = len(v.requests)
    page.locator("#token-input").fill(token)
    page.locator("#verify-offline").click()
    page.wait_for_function("() => document.body.dataset.verdict !== undefined")
    assert page.evaluate("() => document.body.dataset.verdict") == "valid"
    assert v.requests[asked:] == []  # verified with nothing sent anywhere
    shown = page.locator("#content").inner_text()
    assert lic["identifier"] in shown and lic["holder_name"] in shown and "住址" in shown
    # a licence altered by one character of its payload no longer verifies, still offline
    fmt, kid, payload, sig = token.split(".")
    page.locator("#token-input").fill(".".join([fmt, kid, payload[:10] + ("A" if payload[10] != "A" else "B") + payload[11:], sig]))
    page.locator("#verify-offline").click()
    page.wait_for_function("() => document.body.dataset.verdict !== 'valid'")
    assert page.evaluate("() => document.body.dataset.verdict") in ("bad_signature", "malformed")
    page.context.set_offline(False)
    # the QR code's link: the token in the fragment, verified on opening, then checked online
    v2 = visit("/licences/verify#" + token)
    p2 = v2.page
    p2.wait_for_function("() => document.body.dataset.verdict === 'valid'")
    p2.locator("#verify-online").click()
    p2.wait_for_function("() => document.body.dataset.online !== undefined")
    assert p2.evaluate("() => document.body.dataset.online") == "valid"
    v2.screenshot("licences-verify.png")
    assert_clean(v2)


def test_the_verifier_opens_and_verifies_with_no_network_once_it_was_seen_online(visit, site: Site, tokens) -> None:
    """A phone that opened the verifier once scans a QR code later with no network: the service worker serves
    the page, its scripts and the keys from its cache, and the signature is checked on the device."""
    lic = citizen_licence(site, tokens, "id_card")
    token = call(site, tokens["citizen"], "GET", f"/api/v1/licences/{lic['id']}/token")["token"]
    v = visit("/licences/verify")
    page = v.page
    page.wait_for_function("() => document.body.dataset.offline !== undefined")
    assert page.evaluate("() => document.body.dataset.offline") == "ready"
    assert "断网时也能打开" in page.locator("#offline-state").inner_text()
    page.context.set_offline(True)
    # really offline, service worker included: what it does not keep does not load
    failed = page.evaluate("() => fetch('/api/v1/health').then(() => 'loaded', () => 'failed')")
    assert failed == "failed"
    # the QR code's link opened with no network: the page comes from the cache and verifies the code
    page.goto("about:blank")
    response = page.goto(site.url("/licences/verify#" + token), wait_until="load")
    assert response is not None and response.from_service_worker
    page.wait_for_function("() => document.body.dataset.verdict !== undefined")
    assert page.evaluate("() => document.body.dataset.verdict") == "valid"
    assert lic["identifier"] in page.locator("#content").inner_text()
    assert "证照核验" in page.title()
    # the English page was kept too
    page.goto(site.url("/licences/verify?lang=en#" + token), wait_until="load")
    page.wait_for_function("() => document.body.dataset.verdict !== undefined")
    assert page.evaluate("() => document.body.dataset.verdict") == "valid"
    assert "Signature valid" in page.locator("#verdict").inner_text()
    v.screenshot("licences-verify-offline.png")
    page.context.set_offline(False)
    assert v.page_errors == []


def test_a_revoked_licence_verifies_offline_but_fails_online(visit, site: Site, tokens) -> None:
    pid = call(site, tokens["citizen"], "GET", "/api/v1/me")["person_id"]
    made = call(site, tokens["admin"], "POST", "/api/v1/licences",
                {"type_key": "retirement_certificate", "person_id": pid,
                 "fields": {"retired_on": "2026-06-30", "employer": "徐汇区某单位"}})
    token = call(site, tokens["dataofficer"], "GET", f"/api/v1/licences/{made['id']}/token")["token"]
    call(site, tokens["admin"], "POST", f"/api/v1/licences/{made['id']}/revoke", {"reason": "测试注销"})
    v = visit("/licences/verify?lang=en#" + token)
    page = v.page
    page.wait_for_function("() => document.body.dataset.verdict === 'valid'")
    page.locator("#verify-online").click()
    page.wait_for_function("() => document.body.dataset.online !== undefined")
    assert page.evaluate("() => document.body.dataset.online") == "revoked"
    assert "revoked" in page.locator("#online-verdict").inner_text()
    assert_clean(v)


def test_the_cli_verifies_offline_with_the_published_keys_and_online_with_the_register(site: Site, tokens,
                                                                                     tmp_path: Path) -> None:
    from citybase.cli import app

    lic = citizen_licence(site, tokens, "medical_insurance")
    link = call(site, tokens["citizen"], "GET", f"/api/v1/licences/{lic['id']}/token")["link"]
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(site.get_json("/api/v1/licences/keys")))
    good = tmp_path / "licence.txt"
    good.write_text(link)
    runner = CliRunner()
    offline = runner.invoke(app, ["licences", "verify", str(good), "--keys", str(keys)])
    assert offline.exit_code == 0, offline.output
    assert lic["identifier"] in offline.output.replace("\n", "") or "valid" in offline.output
    online = runner.invoke(app, ["licences", "verify", str(good), "--keys", str(keys), "--online", site.base])
    assert online.exit_code == 0 and "valid" in online.output, online.output
    token = link.split("#", 1)[1]
    fmt, kid, payload, sig = token.split(".")
    bad = tmp_path / "forged.txt"
    bad.write_text(".".join([fmt, kid, payload, sig[:5] + ("A" if sig[5] != "A" else "B") + sig[6:]]))
    forged = runner.invoke(app, ["licences", "verify", str(bad), "--keys", str(keys)])
    assert forged.exit_code == 1 and "bad_signature" in forged.output
