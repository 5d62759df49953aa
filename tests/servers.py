"""A real citybase server for tests: uvicorn in its own process, on a free port, for a given database."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1] / "src"
START_WITHIN = 90.0  # seconds for the server to answer its first request (two shared cores, many tests)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Answer:
    status: int  # 0 when no answer came (timeout, connection refused or reset)
    body: Any
    headers: dict[str, str]
    error: str | None = None


def call(method: str, url: str, *, json_body: Any = None, headers: dict[str, str] | None = None,
         timeout: float = 30.0) -> Answer:
    """One HTTP request with the standard library; never raises for an HTTP status or a lost answer. The
    answer's header names are lower-cased (HTTP header names are case-insensitive)."""
    data = json.dumps(json_body).encode() if json_body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - our own test server
            raw, status, hdrs = resp.read(), resp.status, {k.lower(): v for k, v in resp.headers.items()}
    except urllib.error.HTTPError as exc:
        raw, status, hdrs = exc.read(), exc.code, {k.lower(): v for k, v in exc.headers.items()}
    except (OSError, TimeoutError) as exc:
        return Answer(0, None, {}, f"{exc.__class__.__name__}: {exc}")
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode(errors="replace")
    return Answer(status, body, hdrs)


@dataclass
class Server:
    base: str
    stopped_by_sigterm: bool | None = None  # known once the block has ended


@contextmanager
def serve(database_url: str, data_dir: Path, **env: str) -> Iterator[Server]:
    """Run ``uvicorn citybase.api.app:create_app --factory`` for the database; yield the running server.

    Stopped with SIGTERM at the end, and killed if it does not stop (a hung server must not hang the tests)."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = open(data_dir / f"server-{port}.log", "wb")  # noqa: SIM115 - closed below
    environ = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               "CITYBASE_DATABASE_URL": database_url, "CITYBASE_DATA_DIR": str(data_dir),
               "CITYBASE_WORKERS": "0", **env}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "citybase.api.app:create_app", "--factory",
                             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                            env=environ, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    server = Server(base)
    try:
        deadline = time.monotonic() + START_WITHIN
        while call("GET", f"{base}/api/v1/health", timeout=2).status != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {(data_dir / f'server-{port}.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
            server.stopped_by_sigterm = True
        except subprocess.TimeoutExpired:
            server.stopped_by_sigterm = False
            proc.kill()
            proc.wait()
        log.close()
