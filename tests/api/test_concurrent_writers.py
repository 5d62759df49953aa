"""Many writers at once on a real server: every write answers, and the server keeps serving (issue 7)."""

from __future__ import annotations

import threading
import uuid

from tests.servers import call, serve

WRITERS = 6
WRITES_EACH = 3


def test_concurrent_admin_writers_never_hang_the_server(city, tmp_path):
    admin = city.auth("admin")
    answers: list[int] = []
    errors: list[str] = []
    start = threading.Barrier(WRITERS)

    with serve(city.db.url, tmp_path) as server:
        def writer(k: int) -> None:
            start.wait()
            for i in range(WRITES_EACH):
                a = call("POST", f"{server.base}/api/v1/users", headers=admin, timeout=20, json_body={
                    "username": f"w{k}-{i}-{uuid.uuid4().hex[:8]}", "display_name": f"并发写入 {k}-{i}",
                    "roles": ["analyst"]})
                answers.append(a.status)
                if a.status != 201:
                    errors.append(f"{a.status} {a.error or a.body}")

        threads = [threading.Thread(target=writer, args=(k,), daemon=True) for k in range(WRITERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert not any(t.is_alive() for t in threads), "writers still waiting: the server hangs"
        health = call("GET", f"{server.base}/api/v1/health", timeout=30)
        listed = call("GET", f"{server.base}/api/v1/users", headers=admin, timeout=30)

    assert errors == []
    assert answers == [201] * (WRITERS * WRITES_EACH)
    assert health.status == 200 and health.body["status"] == "ok"
    assert listed.status == 200
    assert server.stopped_by_sigterm is True
