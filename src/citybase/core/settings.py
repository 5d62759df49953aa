"""Settings read from the environment (CITYBASE_*), with embedded defaults that need no server."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    bus_url: str
    host: str
    port: int
    workers: bool = True  # background consumers and timers in the serving process
    threads: int = 0  # threads for sync request handlers; 0 chooses by engine

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")


def load_settings(**overrides: object) -> Settings:
    """Read the settings from CITYBASE_* variables; keyword overrides win over the environment."""
    data_dir = Path(str(overrides.get("data_dir") or os.environ.get("CITYBASE_DATA_DIR", "data"))).resolve()
    default_db = f"sqlite:///{data_dir / 'citybase.sqlite3'}"
    return Settings(
        data_dir=data_dir,
        database_url=str(overrides.get("database_url") or os.environ.get("CITYBASE_DATABASE_URL") or default_db),
        bus_url=str(overrides.get("bus_url") or os.environ.get("CITYBASE_BUS_URL") or "memory://"),
        host=str(overrides.get("host") or os.environ.get("CITYBASE_HOST", "127.0.0.1")),
        port=int(str(overrides.get("port") or os.environ.get("CITYBASE_PORT", "8000"))),
        workers=str(overrides.get("workers", os.environ.get("CITYBASE_WORKERS", "1"))).lower() not in ("0", "false", "no"),
        threads=int(str(overrides.get("threads") or os.environ.get("CITYBASE_THREADS", "0"))),
    )
