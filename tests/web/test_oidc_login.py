"""The login page's 统一身份认证 button in headless Chromium, against the test OIDC issuer
(tests/security/oidc_issuer.py) and a citybase served with OIDC on: the button goes to the issuer, the issuer
sends the browser back with a code, the page trades it (PKCE) and is signed in as the registry person."""

from __future__ import annotations

import random
import secrets
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session

from citybase.security.settings import OidcSettings
from tests.security.oidc_issuer import CLIENT_ID, RunningIssuer
from tests.web.conftest import SCREENSHOTS, VIEWPORT, free_port


@pytest.fixture(scope="module")
def idp() -> Iterator[RunningIssuer]:
    running = RunningIssuer(("RS256",))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def oidc_site(tmp_path_factory: pytest.TempPathFactory, idp: RunningIssuer) -> Iterator[tuple[str, Any]]:
    """A small demo city served by uvicorn with CITYBASE_OIDC_* pointing at the test issuer: (base, engine)."""
    import uvicorn

    from citybase.api.app import create_app
    from citybase.api.identity import registry_account
    from citybase.core.settings import load_settings
    from citybase.demo.generator import generate
    from citybase.geo.service import reset_caches
    from citybase.security.oidc import OidcSignIn
    from citybase.storage.db import make_engine
    from citybase.storage.migrate import upgrade

    tmp = tmp_path_factory.mktemp("oidc-web-city")
    url = f"sqlite:///{tmp / 'citybase.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    generate(engine, size="small", seed=7)
    reset_caches()
    app = create_app(load_settings(data_dir=tmp, database_url=url, bus_url="memory://"))
    app.state.oidc = OidcSignIn(OidcSettings(issuer=idp.issuer.url, audience=CLIENT_ID), registry_account)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="citybase-oidc-web-test", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(base + "/api/v1/health", timeout=1) as r:  # noqa: S310 - our own server
                if r.status == 200:
                    break
        except OSError:
            pass
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            pytest.fail(f"the test server on {base} did not answer /api/v1/health", pytrace=False)
        time.sleep(0.05)
    try:
        yield base, engine
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        app.state.engine.dispose()
        engine.dispose()


def _person(engine: Any) -> tuple[int, str]:
    from citybase.registry import service as registry
    from tests.security.test_oidc import _unused_id_number

    with Session(engine) as session:
        idn = _unused_id_number(session, random.Random(secrets.randbits(64)))
        p = registry.create_person(session=session, id_number=idn, name="浏览器测试", phone=None, household_no="H-WEB")
        session.commit()
        return p.id, idn


def _page(chromium_browser: Any) -> tuple[Any, Any, list[str]]:
    ctx = chromium_browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    page = ctx.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return ctx, page, errors


def test_the_button_signs_in_through_the_identity_provider(chromium_browser, oidc_site, idp):
    base, engine = oidc_site
    person_id, idn = _person(engine)
    idp.issuer.login_as = {"id_number": idn, "sub": f"web-{person_id}"}
    ctx, page, errors = _page(chromium_browser)
    try:
        page.goto(base + "/login", wait_until="load")
        page.wait_for_function("() => document.body.dataset.ready === 'signed-out'")
        button = page.locator("#oidc-sign-in")
        assert button.is_visible() and button.text_content() == "使用统一身份认证登录"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "login-oidc.png"), animations="disabled")
        with page.expect_request(lambda r: r.url.startswith(idp.issuer.url + "/authorize")) as went:
            button.click()
        q = went.value.url
        assert "code_challenge_method=S256" in q and f"client_id={CLIENT_ID}" in q and "code_challenge=" in q
        page.wait_for_function("() => document.body.dataset.ready === 'signed-in'")
        assert page.locator("#me-username").text_content() == f"oidc-person-{person_id}"
        assert "code=" not in page.url and page.url == base + "/login"  # the code is gone from the address bar
        token = page.evaluate("() => localStorage.getItem('citybase.token')")
        assert token.count(".") == 2  # the verified ID token is the bearer token
        req = urllib.request.Request(base + "/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - our own server
            assert b'"person_id":%d' % person_id in r.read()
        grant = idp.issuer.token_requests[-1]
        assert grant["redirect_uri"] == base + "/login" and len(grant["code_verifier"]) >= 43
        assert errors == []
    finally:
        ctx.close()


def test_a_callback_not_started_here_is_refused(chromium_browser, oidc_site):
    base, _ = oidc_site
    ctx, page, errors = _page(chromium_browser)
    try:
        page.goto(base + "/login?lang=en&code=forged&state=forged", wait_until="load")
        page.wait_for_function("() => document.body.dataset.ready === 'oidc-refused'")
        assert "not started from this page" in page.locator("#login-msg").text_content()
        assert page.evaluate("() => localStorage.getItem('citybase.token')") is None
    finally:
        ctx.close()


def test_without_oidc_the_page_offers_only_the_token_form(visit):
    v = visit("/login")
    v.page.wait_for_function("() => document.body.dataset.ready === 'signed-out'")
    assert not v.page.locator("#oidc").is_visible()
