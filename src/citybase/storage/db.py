"""Engines, sessions and the declarative base shared by every domain's models."""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from citybase.core.errors import Conflict, Unavailable

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``sqlite:///path`` (folder created, WAL, foreign keys on) or ``postgresql+psycopg://``."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
            # No upper bound on connections to a local file: a request's session keeps its connection until
            # FastAPI closes it after the response, and the response waits for a free request thread; with a
            # bounded pool, threads waiting for a connection and finished requests waiting for a thread
            # stall each other until the pool's timeout.
            kwargs.setdefault("pool_size", 10)
            kwargs.setdefault("max_overflow", -1)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        checkpointer = Checkpointer(u.database) if u.database and u.database != ":memory:" else None

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA cache_size=-65536")
            if checkpointer is not None:  # the checkpoints in a thread of their own, off the commits (see there)
                cur.execute(f"PRAGMA wal_autocheckpoint={Checkpointer.FALLBACK_PAGES}")
                cur.execute(f"PRAGMA journal_size_limit={Checkpointer.KEEP_BYTES}")
                checkpointer.start()
            cur.close()

        if checkpointer is not None:
            event.listen(engine, "engine_disposed", lambda _engine: checkpointer.stop())
            weakref.finalize(engine, checkpointer.stop)
            CHECKPOINTERS[engine] = checkpointer
        return engine
    if u.get_backend_name() == "postgresql":
        kwargs.setdefault("pool_size", 20)
        kwargs.setdefault("max_overflow", 20)
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(url, **kwargs)
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///… or postgresql+psycopg://…")


class Checkpointer:
    """Copies a SQLite database's write-ahead log back into the database file from a thread of its own.

    SQLite's own automatic checkpoint runs inside the commit that crosses 1,000 pages of log: that commit
    then copies the log and waits for the file's fsync, and every writer behind it waits too (a third of the
    IoT ingest's wall time was spent so). Here every connection's automatic checkpoint starts only at
    ``FALLBACK_PAGES`` (a safety net: a process whose thread is gone still bounds its log), and this thread
    runs a PASSIVE checkpoint, which never blocks a reader or a writer, when the log file holds more than
    ``EVERY_BYTES`` and was written since the last one, looking every ``INTERVAL`` seconds. The log file is cut back to ``KEEP_BYTES`` when it
    is reused. The thread starts with the engine's first connection and ends when the engine is disposed."""

    INTERVAL = 0.5
    EVERY_BYTES = 4 * 2**20
    FALLBACK_PAGES = 16384  # 64 MiB of 4 KiB pages
    KEEP_BYTES = 64 * 2**20

    def __init__(self, path: str) -> None:
        self.path = path
        self.wal = Path(f"{path}-wal")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.runs = 0

    def start(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name=f"sqlite-checkpoint {Path(self.path).name}",
                                                daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        import sqlite3

        conn: sqlite3.Connection | None = None
        seen = 0
        try:
            while not self._stop.wait(self.INTERVAL):
                try:
                    st = self.wal.stat()
                    if st.st_size < self.EVERY_BYTES or st.st_mtime_ns == seen:
                        continue  # a small log, or nothing written since the last checkpoint
                    seen = st.st_mtime_ns
                    if conn is None:
                        conn = sqlite3.connect(self.path, timeout=0, check_same_thread=False)
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.runs += 1
                except (OSError, sqlite3.Error):  # the file gone (a test's folder removed) or busy: next time
                    if not Path(self.path).exists():
                        return
        finally:
            if conn is not None:
                conn.close()


def sqlite_datetime(t: datetime | None) -> str | None:
    """A time as SQLAlchemy's DateTime stores it on SQLite (its fields as given, microseconds, no offset), for
    writes through the DBAPI that must compare equal to the ORM's."""
    if t is None:
        return None
    return t.isoformat(" ", "microseconds")[:26]  # the offset cut off (a year has 4 digits here)


CHECKPOINTERS: weakref.WeakKeyDictionary[Engine, Checkpointer] = weakref.WeakKeyDictionary()


def is_postgres(bind: Engine | Session | Any) -> bool:
    """True when the engine or session talks to PostgreSQL."""
    return bind.get_bind().dialect.name == "postgresql" if isinstance(bind, Session) else bind.dialect.name == "postgresql"


WRITER_WAIT = 10.0  # seconds a SQLite writer waits for the writer lock before the request gets a 503
WRITER_RETRY_AFTER = 2  # seconds the client is told to wait before retrying


def make_sessionmaker(engine: Engine, *, writer_wait: float = WRITER_WAIT) -> sessionmaker[Session]:
    """Sessions for an engine. On SQLite, writers queue on a process lock from their first write to the
    end of the transaction: SQLite admits one writer, and its own busy handler makes the others sleep
    and poll, which under load wastes most of the time. A writer that waits longer than ``writer_wait``
    seconds gets ``Unavailable`` (503, retry) instead of waiting for ever."""
    factory = sessionmaker(engine, expire_on_commit=False)
    if engine.dialect.name == "sqlite":
        _serialise_writers(factory, engine, writer_wait)
    return factory


class WriterLock:
    """One writer at a time, owned by a session's transaction, not by a thread.

    A request's session is flushed in one worker thread and committed or closed in another (FastAPI runs
    a dependency's exit in its own thread), so a thread-owned lock cannot be released there. Each
    acquisition gets a token; only the holder of the current token releases, so a second release (the
    transaction's end and the session's garbage collection) is harmless."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._guard = threading.Lock()
        self._token: object | None = None

    def acquire(self, timeout: float) -> object | None:
        """A token when the lock was taken within ``timeout`` seconds, else None."""
        if not self._lock.acquire(timeout=timeout):
            return None
        token = object()
        with self._guard:
            self._token = token
        return token

    def release(self, token: object) -> bool:
        """Release if ``token`` holds the lock; True when it did."""
        with self._guard:
            if token is None or self._token is not token:
                return False
            self._token = None
            self._lock.release()
            return True

    @property
    def held(self) -> bool:
        return self._token is not None


_writer_locks: weakref.WeakKeyDictionary[Engine, WriterLock] = weakref.WeakKeyDictionary()
_writer_locks_guard = threading.Lock()


def writer_lock(engine: Engine) -> WriterLock:
    """The one writer lock of a SQLite engine, shared by every session factory made for it."""
    with _writer_locks_guard:
        return _writer_locks.setdefault(engine, WriterLock())


_acquirers: weakref.WeakKeyDictionary[Engine, Any] = weakref.WeakKeyDictionary()


def take_writer(session: Session) -> None:
    """Take the SQLite writer lock for this session's transaction now, before a write the ORM does not see (a
    raw DBAPI cursor): without it such a write holds SQLite's own lock while the next ORM write of the same
    transaction queues on the process lock behind a writer that waits for SQLite — a deadlock until both
    time out. Nothing to do on PostgreSQL or for a session that holds it already."""
    bind = session.get_bind()
    acquire = _acquirers.get(bind) if bind.dialect.name == "sqlite" else None
    if acquire is not None:
        acquire(session)


def _serialise_writers(factory: sessionmaker[Session], engine: Engine, wait: float) -> None:
    # One lock per engine, so the request sessions, the workers and the demo simulation all queue together.
    lock = writer_lock(engine)

    def acquire(session: Session) -> None:
        if session.info.get("_writer") is not None:
            return
        token = lock.acquire(wait)
        if token is None:
            raise Unavailable(f"the database is busy: another write did not finish within {wait:g} s",
                              fix=f"Retry in {WRITER_RETRY_AFTER} seconds.", retry_after=WRITER_RETRY_AFTER)
        # A session dropped without ending its transaction must not keep the lock: release it on collection.
        session.info["_writer"] = (token, weakref.finalize(session, lock.release, token))

    def release(session: Session, transaction: Any) -> None:
        if transaction.parent is None:
            held = session.info.pop("_writer", None)
            if held is not None:
                token, finalizer = held
                finalizer.detach()
                lock.release(token)

    _acquirers[engine] = acquire
    event.listen(factory, "before_flush", lambda session, *_: acquire(session))
    event.listen(factory, "do_orm_execute",
                 lambda state: acquire(state.session) if not state.is_select else None)
    event.listen(factory, "after_transaction_end", release)


def stale_conflict(exc: Exception) -> Conflict:
    """The 409 for a lost optimistic-versioning race (SQLAlchemy's StaleDataError at flush or commit)."""
    m = re.search(r"table '(\w+)'", str(exc))
    return Conflict("another request changed the same record while this one was working on it; "
                    "nothing of this request was stored",
                    fix="Reload the record (GET it again) and retry the step if it still applies.",
                    table=m.group(1) if m else None)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits when the block succeeds and rolls back when it raises."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def bulk_insert(engine: Engine, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Load rows fast: COPY on PostgreSQL, executemany in one transaction on SQLite. Returns the count."""
    n = 0
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if engine.dialect.name == "postgresql":
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in rows:
                    copy.write_row(row)
                    n += 1
        else:
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
            batch: list[Sequence[Any]] = []
            for row in rows:
                batch.append(row)
                if len(batch) >= 20000:
                    cur.executemany(sql, batch)
                    n += len(batch)
                    batch.clear()
            if batch:
                cur.executemany(sql, batch)
                n += len(batch)
        raw.commit()
    finally:
        raw.close()
    return n


def has_table(engine: Engine, name: str) -> bool:
    return inspect(engine).has_table(name)
