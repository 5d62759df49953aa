"""Fixtures of the kernel tests: fresh buildings to report at, an event collector, a private NATS server."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from citybase.bus import Event, Subscription
from citybase.geo.models import Building
from citybase.kernel.models import OutboxEvent
from tests.bus.conftest import NATS_URL
from tests.conftest import unavailable

_next = itertools.count()


def fresh_building(city) -> Building:
    """A residential building from the far end of the list, a different one per call (no duplicates)."""
    with Session(city.engine) as s:
        return s.scalars(select(Building).where(Building.use == "residential")
                         .order_by(Building.id.desc()).offset(40 + next(_next))).first()


def outbox_ids(city, incident_id: int) -> list[tuple[str, bool]]:
    """(event id, published?) of the outbox rows about one incident, in order."""
    import json

    with Session(city.engine) as s:
        rows = s.scalars(select(OutboxEvent).order_by(OutboxEvent.seq)).all()
        return [(r.event_id, r.published_at is not None) for r in rows
                if json.loads(r.data).get("incident_id") == incident_id]


def collect(sub: Subscription, keep: Callable[[Event], bool], n: int, wait: float = 60.0) -> list[Event]:
    """Fetch (and ack) until ``n`` kept events arrived or ``wait`` seconds passed, then one more quiet fetch
    so a duplicate arriving late is seen too."""
    got: list[Event] = []
    deadline = time.monotonic() + wait
    while len(got) < n and time.monotonic() < deadline:
        for d in sub.fetch(batch=100, timeout=1.0):
            if keep(d.event):
                got.append(d.event)
            d.ack()
    for d in sub.fetch(batch=100, timeout=1.0):
        if keep(d.event):
            got.append(d.event)
        d.ack()
    return got


@pytest.fixture
def nats_deployment() -> Iterator[str]:
    """A URL of the shared NATS server with a deployment of this test's own (streams deleted after)."""
    from citybase.bus.nats import NatsBus

    url = f"{NATS_URL}?deployment=t{uuid.uuid4().hex[:10]}"
    try:
        probe = NatsBus(url)
    except ConnectionError as exc:
        unavailable(f"NATS JetStream not available: {exc}")
    probe.close()
    yield url
    cleanup = NatsBus(url)
    try:
        cleanup.delete_streams()
    finally:
        cleanup.close()


@dataclass
class PrivateNats:
    """A nats-server of this test alone, that the test may stop and start (the shared one stays up)."""

    binary: str
    port: int
    store: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "-js", "-a", "127.0.0.1", "-p", str(self.port),
                                      "-sd", str(self.store)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"nats-server on port {self.port} did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
        self.proc = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[PrivateNats]:
    """A private JetStream server (stopped at the end whatever the test did to it)."""
    binary = shutil.which("nats-server") or ("/usr/sbin/nats-server" if os.path.exists("/usr/sbin/nats-server") else None)
    if binary is None:
        unavailable("nats-server is not installed")
    server = PrivateNats(binary, _free_port(), tmp_path / "jetstream")
    server.start()
    yield server
    server.stop()
