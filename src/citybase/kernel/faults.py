"""Which failures are the server's and pass (database or bus unavailable), told apart from the client's.

Such a failure is answered 503 with ``Retry-After`` so a client retries instead of giving up or blaming
its request; with an ``Idempotency-Key`` the retry never makes a duplicate."""

from __future__ import annotations

import psycopg
from sqlalchemy import exc as sa

from citybase.core.errors import Unavailable

RETRY_AFTER = 5  # seconds: long enough for a pool to reconnect or a PostgreSQL primary to come back

# SQLAlchemy's OperationalError covers lost connections, refused connections, statement timeouts,
# serialisation failures and deadlocks on PostgreSQL, and "database is locked" or an unopenable file on
# SQLite: none is the client's doing and each may pass. The bus raises ConnectionError or TimeoutError.
TRANSIENT: tuple[type[BaseException], ...] = (
    sa.OperationalError, sa.DisconnectionError, sa.TimeoutError, psycopg.OperationalError,
    ConnectionError, TimeoutError,
)


# SQLite raises OperationalError for bugs too (no such table, a syntax error): only these messages pass.
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "unable to open database", "disk i/o error",
                     "database or disk is full")


def _is_bug(exc: BaseException) -> bool:
    """An OperationalError that is a fault in citybase's SQL, not the database being away."""
    orig = getattr(exc, "orig", None)
    if orig is not None and type(orig).__module__ == "sqlite3":
        return not any(m in str(orig).lower() for m in _SQLITE_TRANSIENT)
    return False


def unavailable(exc: BaseException) -> Unavailable | None:
    """The 503 to answer for a transient server-side failure, or None if ``exc`` is not one (a bug: 500)."""
    if isinstance(exc, Unavailable):
        return exc
    if _is_bug(exc):
        return None
    if isinstance(exc, sa.DBAPIError) and exc.connection_invalidated:
        what = "the database connection was lost"
    elif isinstance(exc, sa.OperationalError | sa.DisconnectionError | psycopg.OperationalError):
        what = "the database is unavailable"
    elif isinstance(exc, sa.TimeoutError):
        what = "every database connection is busy"
    elif isinstance(exc, ConnectionError | TimeoutError):
        what = "a service the request needs (the event bus) is unavailable"
    else:
        return None
    return Unavailable(f"{what} for a moment; this is not a fault of the request",
                       fix=f"Retry after {RETRY_AFTER} seconds (with the same Idempotency-Key for a report, "
                           "so a retry never files it twice).", retry_after=RETRY_AFTER)
