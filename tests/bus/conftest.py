"""Fixtures running the bus contract against every implementation: in-process and NATS JetStream."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from citybase.bus import Bus, connect

NATS_URL = os.environ.get("CITYBASE_TEST_NATS_URL", "nats://127.0.0.1:4222")


def unavailable(reason: str) -> None:
    """Skip a test whose service is missing, or fail it when CITYBASE_REQUIRE_SERVICES=1 (CI)."""
    if os.environ.get("CITYBASE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (CITYBASE_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def nats_problem() -> str | None:
    """Why the NATS test server cannot be used, or None when it can (probed once per session)."""
    from citybase.bus.nats import NatsBus

    prefix = f"probe{uuid.uuid4().hex[:12]}"
    try:
        probe = NatsBus(NATS_URL, stream=prefix.upper(), subjects_prefix=prefix)
    except ConnectionError as exc:
        return f"NATS JetStream not available: {exc}"
    try:
        probe.delete_streams()
    finally:
        probe.close()
    return None


@pytest.fixture(params=["memory", pytest.param("nats", marks=pytest.mark.nats)])
def bus_kind(request: pytest.FixtureRequest) -> str:
    """Which implementation the test runs against."""
    if request.param == "nats" and request.getfixturevalue("nats_problem"):
        unavailable(request.getfixturevalue("nats_problem"))
    return request.param


@pytest.fixture
def subj(bus_kind: str) -> str:
    """The subject prefix of the bus under test: "citybase" in memory, a per-test prefix on NATS."""
    return "citybase" if bus_kind == "memory" else f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_bus(bus_kind: str, subj: str) -> Iterator[Callable[..., Bus]]:
    """A factory of buses (keyword max_deliver); NATS ones share this test's own streams, deleted after."""
    made: list[Bus] = []

    def make(*, max_deliver: int = 5) -> Bus:
        if bus_kind == "memory":
            bus = connect("memory://", max_deliver=max_deliver)
        else:
            bus = connect(NATS_URL, stream=subj.upper(), subjects_prefix=subj, max_deliver=max_deliver)
        made.append(bus)
        return bus

    yield make
    for bus in made:
        bus.close()
    if bus_kind == "nats":
        from citybase.bus.nats import NatsBus

        cleanup = NatsBus(NATS_URL, stream=subj.upper(), subjects_prefix=subj)
        try:
            cleanup.delete_streams()
        finally:
            cleanup.close()


@pytest.fixture
def bus(make_bus: Callable[..., Bus]) -> Bus:
    """A bus with the default max_deliver."""
    return make_bus()
