"""Fuzzing over the app's own OpenAPI (schemathesis): for an anonymous, a citizen and an admin caller, no
generated request — valid or deliberately invalid — gets a 5xx, or a status its operation does not
document, and every API error is problem+json.

Bounded for CI: CITYBASE_FUZZ_EXAMPLES examples (default 4) per operation, per generation mode
(valid and invalid inputs), per caller. Nothing is excluded: no endpoint streams or long-polls, and
the documentation pages are outside the schema. The run writes (it creates users, retires rules,
may revoke tokens), so it gets a city of its own instead of the shared session one."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from citybase.api.app import create_app
from citybase.bus.memory import InProcessBus
from citybase.demo.accounts import create_demo_users
from citybase.demo.generator import generate
from citybase.geo.service import reset_caches
from citybase.storage.migrate import upgrade
from tests.conftest import ENGINES, new_database

EXAMPLES = int(os.environ.get("CITYBASE_FUZZ_EXAMPLES", "4"))
CALLERS = [None, "citizen", "admin"]
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module", params=ENGINES)
def fuzz_schema(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """The OpenAPI of an app on a fresh small city, with the demo tokens."""
    tmp = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    db = new_database(request.param, tmp)
    upgrade(db.engine)
    generate(db.engine, size="small", seed=11)
    tokens = create_demo_users(db.engine, Path(tmp))
    reset_caches()
    app = create_app(engine=db.engine, bus=InProcessBus())

    def fresh_tokens() -> dict[str, str]:
        return create_demo_users(db.engine, Path(tmp))

    yield schemathesis.openapi.from_asgi("/openapi.json", app), tokens, fresh_tokens
    reset_caches()
    db.engine.dispose()
    if db.drop:
        db.drop()  # type: ignore[operator]


def _problems(op, r, documented: set[str]) -> list[str]:
    out = []
    if r.status_code >= 500:
        out.append(f"server error {r.status_code}")
    elif str(r.status_code) not in documented:
        out.append(f"status {r.status_code} is not documented (only {', '.join(sorted(documented))})")
    ctype = (r.headers.get("content-type") or [""])[0]
    if r.status_code >= 400 and op.path.startswith("/api/") and ctype != PROBLEM:
        out.append(f"error as {ctype}, not {PROBLEM}")
    return out


def _fuzz(op, mode: GenerationMode, caller: str | None, headers: dict[str, str], fresh_tokens,
          counts: Counter[str], failures: dict[tuple[str, str, str], str]) -> None:
    """Send EXAMPLES generated requests of one operation and mode, recording counts and failures."""
    documented = set(op.definition.raw["responses"])
    method = op.method.upper()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case) -> None:
        r = case.call(headers=headers)
        counts["requests"] += 1
        counts[f"{r.status_code // 100}xx"] += 1
        for problem in _problems(op, r, documented):
            failures.setdefault((method, op.path, problem),
                                f"{case.path_parameters} {case.query} {str(case.body)[:200]} -> {r.text[:300]}")
        if caller and method == "DELETE" and "tokens" in op.path and r.status_code == 200:
            # the admin may have revoked its own token: a new one keeps the rest of the run meaningful
            headers["Authorization"] = f"Bearer {fresh_tokens()[caller]}"

    try:
        run()
    except Unsatisfiable:
        if mode is not GenerationMode.NEGATIVE:
            raise
        counts["operations with no invalid input to send"] += 1  # e.g. no parameters and no body


@pytest.mark.parametrize("caller", CALLERS, ids=lambda c: c or "anonymous")
def test_generated_requests_get_no_5xx_and_only_documented_statuses(fuzz_schema, caller):
    schema, tokens, fresh_tokens = fuzz_schema
    headers = {"Authorization": f"Bearer {tokens[caller]}"} if caller else {}
    counts: Counter[str] = Counter()
    failures: dict[tuple[str, str, str], str] = {}
    for result in schema.get_all_operations():
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(result.ok(), mode, caller, headers, fresh_tokens, counts, failures)
    print(f"\nfuzz {caller or 'anonymous'}: {dict(counts)}")
    assert counts["requests"] > 0
    assert not failures, "\n".join(f"{m} {p}: {why}\n    {example}" for (m, p, why), example in failures.items())
