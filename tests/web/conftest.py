"""Fixtures for the page tests: a small demo city served by a real uvicorn on 127.0.0.1, and headless Chromium.

A missing Chromium skips the browser tests locally, but fails them when CITYBASE_REQUIRE_SERVICES=1
(as CI sets), so CI can never pass by skipping."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path(os.environ.get("CITYBASE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 900}
SCREENSHOTS = Path(__file__).resolve().parents[1] / "screenshots"


def unavailable(reason: str) -> None:
    """Skip, or fail when the services are required (CITYBASE_REQUIRE_SERVICES=1)."""
    if os.environ.get("CITYBASE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service unavailable: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Site:
    """The served demo city: its base URL and a JSON getter for its API."""

    base: str
    data_dir: Path | None = None
    database_url: str | None = None

    def url(self, path: str) -> str:
        return self.base + path

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.url(path), timeout=10) as r:  # noqa: S310 - our own 127.0.0.1 server
            return json.loads(r.read().decode("utf-8"))


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The small demo city (seed 7) in a fresh SQLite file, served by uvicorn in a background thread."""
    import uvicorn

    from citybase.api.app import create_app
    from citybase.core.settings import load_settings
    from citybase.demo.generator import generate
    from citybase.geo.service import reset_caches
    from citybase.storage.db import make_engine
    from citybase.storage.migrate import upgrade

    tmp = tmp_path_factory.mktemp("web-city")
    url = f"sqlite:///{tmp / 'citybase.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    generate(engine, size="small", seed=7)
    engine.dispose()
    reset_caches()

    settings = load_settings(data_dir=tmp, database_url=url, bus_url="memory://")
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="citybase-web-test", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(base + "/api/v1/health", timeout=1) as r:  # noqa: S310
                if r.status == 200:
                    break
        except OSError:
            pass
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            pytest.fail(f"the test server on {base} did not answer /api/v1/health", pytrace=False)
        time.sleep(0.05)
    try:
        yield Site(base, data_dir=tmp, database_url=url)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        app.state.engine.dispose()


@pytest.fixture(scope="session")
def demo_tokens(site: Site) -> dict[str, str]:
    """The demo users (one per role) in the served city, with a fresh token each: {username: token}."""
    from citybase.demo.accounts import create_demo_users
    from citybase.storage.db import make_engine

    assert site.data_dir is not None and site.database_url is not None
    engine = make_engine(site.database_url)
    try:
        return create_demo_users(engine, site.data_dir)
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright (never a downloaded browser)."""
    if not CHROMIUM.exists():
        unavailable(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        unavailable(f"playwright is not installed: {exc}")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@dataclass
class Visit:
    """One browser page on the site, with every request, console error and page error it made."""

    page: Any
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    bad_responses: list[str] = field(default_factory=list)

    def foreign_requests(self) -> list[str]:
        return [u for u in self.requests
                if urlsplit(u).scheme not in ("data", "blob", "about") and urlsplit(u).hostname != "127.0.0.1"]

    def wait_map_ready(self, timeout_ms: int = 15_000) -> str:
        self.page.wait_for_function("() => document.body.dataset.mapReady !== undefined", timeout=timeout_ms)
        return self.page.evaluate("() => document.body.dataset.mapReady")

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / name
        self.page.screenshot(path=str(path), animations="disabled")
        return path


def assert_clean(v: Visit) -> None:
    """Nothing left 127.0.0.1, nothing failed, nothing was logged as an error."""
    assert v.requests, "the page made no request at all"
    assert v.foreign_requests() == [], "requests left 127.0.0.1"
    assert v.bad_responses == [], "requests answered with an error status"
    assert v.failed == [], "requests failed"
    assert v.console_errors == [], "console errors"
    assert v.page_errors == [], "uncaught page errors"


@pytest.fixture
def visit(chromium_browser: Any, site: Site) -> Iterator[Callable[[str], Visit]]:
    """Open a path of the site in a fresh 1400x900 browser context; returns the recorded Visit."""
    contexts: list[Any] = []

    def open_(path: str) -> Visit:
        ctx = chromium_browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
        contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(10_000)
        v = Visit(page)
        page.on("request", lambda r: v.requests.append(r.url))
        page.on("response", lambda r: v.bad_responses.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.on("requestfailed", lambda r: v.failed.append(f"{r.url}: {r.failure}"))
        page.on("console", lambda m: v.console_errors.append(f"{m.text} [{m.location.get('url', '')}]")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: v.page_errors.append(str(e)))
        page.goto(site.url(path), wait_until="load")
        return v

    yield open_
    for ctx in contexts:
        ctx.close()


@pytest.fixture(scope="session")
def services_demo_tokens(site: Site, demo_tokens: dict[str, str]) -> dict[str, str]:
    """The demo tokens with 一网通办's accounts (clerks, window, firm) added to the served city once."""
    from citybase.demo.services import load_services_demo
    from citybase.storage.db import make_engine

    engine = make_engine(site.database_url)
    try:
        return {**demo_tokens, **load_services_demo(engine, site.data_dir)}
    finally:
        engine.dispose()
