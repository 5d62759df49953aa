"""`citybase doctor`: is this installation able to run, and if not, what to do about it.

Each check is read-only but for a test file it writes and removes in the data folder."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from citybase.core.settings import InvalidSettings, Settings

BUS_TIMEOUT = 3.0  # seconds to wait for the NATS server
STREAMS = ("CITYBASE", "CITYBASE_DLQ")  # the streams citybase.bus.nats declares by default


@dataclass(frozen=True)
class Check:
    """One finding: ``ok`` True (fine), False (must be fixed; ``fix`` says how) or None (does not apply)."""

    name: str
    ok: bool | None
    detail: str
    fix: str = ""


def run_checks(load: Callable[[], Settings]) -> list[Check]:
    """Every check, in the order a start needs them; ``load`` reads the settings (their errors are a finding)."""
    try:
        settings = load()
    except InvalidSettings as exc:
        return [Check("settings", False, "; ".join(exc.problems), "correct the variables named above")]
    checks = [Check("settings", True, "CITYBASE_* variables valid"), check_data_dir(settings.data_dir)]
    db, engine = check_database(settings.database_url)
    checks.append(db)
    if engine is not None:
        try:
            checks += [check_migrations(engine), check_postgis(engine)]
        finally:
            engine.dispose()
    checks.append(check_bus(settings.bus_url))
    return checks


def check_data_dir(path: Path) -> Check:
    """The data folder exists (or can be made) and this user may write in it."""
    probe = path / f".doctor-{uuid.uuid4().hex[:8]}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return Check("data dir", False, f"{path} is not writable ({exc.strerror or exc})",
                     "create the folder and give this user write access, or set CITYBASE_DATA_DIR to one")
    return Check("data dir", True, f"{path} writable")


def check_database(url: str) -> tuple[Check, Engine | None]:
    """The database answers; returns the engine for the checks that need it (None when it does not)."""
    from citybase.storage.db import make_engine

    u = make_url(url)
    shown = u.render_as_string(hide_password=True)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:" and not Path(u.database).exists():
            return Check("database", False, f"no SQLite database at {u.database}",
                         "run `citybase db upgrade` (or `citybase demo`) to create it, "
                         "or set CITYBASE_DATABASE_URL / CITYBASE_DATA_DIR to where it is"), None
        engine = make_engine(url)
    else:
        engine = make_engine(url, pool_size=1, max_overflow=0, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            version = conn.execute(text("SELECT version()" if engine.dialect.name == "postgresql"
                                        else "SELECT 'SQLite ' || sqlite_version()")).scalar()
    except Exception as exc:  # noqa: BLE001 - any failure to connect is the finding itself
        engine.dispose()
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return Check("database", False, f"cannot connect to {shown}: {reason}",
                     "start the database server, or correct CITYBASE_DATABASE_URL (user, host, port, database; "
                     "the database must exist: createdb <name>)"), None
    return Check("database", True, f"{str(version).split(' on ')[0].split(',')[0]} at {shown}"), engine


def check_migrations(engine: Engine) -> Check:
    """The database is at the newest migration this version of citybase ships."""
    from alembic.script import ScriptDirectory

    from citybase.storage.migrate import MIGRATIONS, current_revision

    script = ScriptDirectory(str(MIGRATIONS))
    head = script.get_current_head()
    current = current_revision(engine)
    if current == head:
        return Check("migrations", True, f"at head {head}")
    if current is None:
        return Check("migrations", False, "the database was never migrated (no tables)",
                     "run `citybase db upgrade`")
    known = {rev.revision for rev in script.walk_revisions()}
    if current not in known:
        return Check("migrations", False, f"the database is at revision {current}, which this citybase does not know "
                     f"(newest here: {head})", "run the citybase version that migrated it, or upgrade citybase")
    return Check("migrations", False, f"at {current}, the newest is {head}", "run `citybase db upgrade`")


def check_postgis(engine: Engine) -> Check:
    """On PostgreSQL, the PostGIS extension is in the database (the spatial queries need it)."""
    if engine.dialect.name != "postgresql":
        return Check("PostGIS", None, "not used on SQLite (the spatial base uses its bounding-box index)")
    with engine.connect() as conn:
        created = conn.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'postgis'")).scalar()
        available = conn.execute(text("SELECT default_version FROM pg_available_extensions "
                                      "WHERE name = 'postgis'")).scalar()
    if created:
        return Check("PostGIS", True, f"PostGIS {created}")
    if available:
        return Check("PostGIS", False, f"PostGIS {available} is installed on the server but not in this database",
                     "run `citybase db upgrade` as a user who may CREATE EXTENSION (it creates postgis)")
    return Check("PostGIS", False, "PostGIS is not installed on the PostgreSQL server",
                 "install it (Debian: apt install postgresql-<major>-postgis-3), then run `citybase db upgrade`")


def check_bus(url: str) -> Check:
    """The event bus answers: memory:// always; nats:// connects, has JetStream, and says whether the
    streams exist yet (the first start creates them; the doctor creates nothing)."""
    if url.startswith("memory:"):
        return Check("bus", True, "in-process (memory://): nothing to reach; one process only")
    shown = _without_secret(url)
    try:
        found = asyncio.run(_probe_nats(url))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server is the finding itself
        return Check("bus", False, f"cannot reach NATS at {shown}: {_describe(exc)}",
                     "start nats-server with JetStream (`nats-server -js`) at that address, or correct "
                     "CITYBASE_BUS_URL (memory:// needs no server, for one process)")
    if found is None:
        return Check("bus", False, f"NATS at {shown} answers but JetStream is not enabled",
                     "restart nats-server with JetStream on (`nats-server -js`, or `jetstream {}` in its config)")
    streams = ", ".join(f"{name} ({n:,} messages)" if n is not None else f"{name} (created at first start)"
                        for name, n in found.items())
    return Check("bus", True, f"NATS JetStream at {shown}: {streams}")


async def _probe_nats(url: str) -> dict[str, int | None] | None:
    """Messages in each of citybase's streams (None: not created yet); None when JetStream is off."""
    import nats
    import nats.js.errors

    errors: list[Exception] = []

    async def quiet(exc: Exception) -> None:  # keep the cause for the finding instead of logging a traceback
        errors.append(exc)

    try:
        # max_reconnect_attempts=1: nats-py reads 0 as "retry forever"; the outer timeout bounds the whole try.
        nc = await asyncio.wait_for(nats.connect(url, connect_timeout=BUS_TIMEOUT, allow_reconnect=False,
                                                 max_reconnect_attempts=1, error_cb=quiet), 3 * BUS_TIMEOUT)
    except Exception as exc:
        raise (errors[-1] if errors else exc) from None
    try:
        js = nc.jetstream(timeout=BUS_TIMEOUT)
        try:
            await js.account_info()
        except (nats.js.errors.ServiceUnavailableError, nats.errors.NoRespondersError):
            return None
        found: dict[str, int | None] = {}
        for name in STREAMS:
            try:
                found[name] = (await js.stream_info(name)).state.messages
            except nats.js.errors.NotFoundError:
                found[name] = None
        return found
    finally:
        await nc.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"no answer within {BUS_TIMEOUT:g} s"
    errors = getattr(exc, "exceptions", None)  # nats-py's NoServersError hides the socket error it wraps
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text if not errors else f"{text} ({errors[0]})"


def _without_secret(url: str) -> str:
    head, sep, rest = url.partition("://")
    return f"{head}{sep}***@{rest.rsplit('@', 1)[1]}" if "@" in rest else url


def render(check: Check) -> str:
    """One line: mark, name, what was found and, when it is wrong, what to do."""
    mark = {True: "✓", False: "✗", None: "·"}[check.ok]
    line = f"{mark} {check.name}: {check.detail}"
    return f"{line} — fix: {check.fix}" if check.ok is False and check.fix else line
