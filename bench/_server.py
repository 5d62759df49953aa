"""Shared by bench/memory.py and bench/faults.py: a database for a run, a demo city in it, and a real
`citybase serve` process (started, killed, restarted) with its resident memory read from /proc."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

CITYBASE = str(Path(sys.executable).with_name("citybase"))
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_database(admin_url: str, prefix: str) -> tuple[str, callable]:
    """A fresh PostgreSQL database on ``admin_url``'s server: its URL and a function that drops it."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {name}"))

    def drop() -> None:
        with admin.connect() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()

    return admin_url.rsplit("/", 1)[0] + f"/{name}", drop


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """The resident set size of process ``pid`` in MB (``VmRSS`` of /proc/<pid>/status; ``RssAnon`` for the
    heap and stacks alone, without mapped files)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for pid {pid}")


class Server:
    """`citybase serve` on its own port with the given database and bus; demo city and tokens set up once."""

    def __init__(self, data: Path, db_url: str, bus_url: str, port: int | None = None, **env: str) -> None:
        self.data, self.port = data, port or free_port()
        data.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "CITYBASE_DATA_DIR": str(data), "CITYBASE_DATABASE_URL": db_url,
                    "CITYBASE_BUS_URL": bus_url, "CITYBASE_PORT": str(self.port), **env}
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def setup(self) -> dict[str, str]:
        """Migrate, generate the small city, train the classifier, issue demo tokens (`citybase demo --no-serve`)."""
        with open(self.data / "setup.log", "w") as log:
            subprocess.run([CITYBASE, "demo", "--size", "small", "--no-serve"], env=self.env, stdout=log,
                           stderr=subprocess.STDOUT, check=True)
        return json.loads((self.data / "demo-tokens.json").read_text())

    def start(self, timeout: float = 120) -> None:
        """Start the server and wait until /api/v1/health answers 200."""
        self.starts += 1
        log = open(self.data / f"server-{self.starts}.log", "w")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen([CITYBASE, "serve"], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the server exited with {self.proc.returncode}; see {self.data}/server-{self.starts}.log")
            try:
                if httpx.get(self.base + "/api/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise SystemExit(f"the server did not start; see {self.data}/server-{self.starts}.log")

    def kill(self) -> None:
        """SIGKILL the server process (no shutdown of any kind)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL after 30 s)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def tear_down(server: Server, kind: str, bus_url: str, data: Path, db_url: str, drop, keep: bool = False) -> None:
    """Stop the server, delete the deployment's NATS streams (PostgreSQL runs), and drop the database and the
    data folder unless ``keep`` (then say where they are)."""
    server.stop()
    if kind == "postgresql":
        from citybase.bus import connect

        bus = connect(bus_url)
        bus.delete_streams()
        bus.close()
    if keep:
        print(f"[{kind}] data kept in {data}, database {db_url}")
        return
    if drop:
        drop()
    shutil.rmtree(data, ignore_errors=True)
