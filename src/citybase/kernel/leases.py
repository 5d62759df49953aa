"""Named leases in the database: at most one holder per name at a time, across every process of a deployment.

A lease is a row ``kernel_leases(name, holder, expires_at)``. It is taken, renewed and released by
compare-and-set statements only (an UPDATE whose WHERE says who may change it, or an INSERT that does
nothing when the row exists), so two processes racing for it never both win, on SQLite or PostgreSQL.
A holder that dies simply stops renewing: once ``expires_at`` has passed, another process takes it over.

Time is the clock of the process asking (UTC); processes on different machines must keep their clocks
within a small part of the lease's length. The functions take a session and never commit: commit right
after, so the lease is visible to the others before the work it guards begins."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import DateTime, String, delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from citybase.core.timeutil import as_utc, utcnow
from citybase.storage.db import Base, is_postgres


class Lease(Base):
    __tablename__ = "kernel_leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def acquire(*, session: Session, name: str, holder: str, ttl: float, now: datetime | None = None) -> bool:
    """Take the lease ``name`` for ``ttl`` seconds if it is free, expired or already ours (then it is
    renewed). True when ``holder`` holds it afterwards. Never commits."""
    now = now or utcnow()
    until = now + timedelta(seconds=ttl)
    taken = session.execute(
        update(Lease).where(Lease.name == name, (Lease.holder == holder) | (Lease.expires_at < now))
        .values(holder=holder, expires_at=until).execution_options(synchronize_session=False))
    if taken.rowcount == 1:
        return True
    # No row matched: either nobody ever took it (insert it) or someone else holds it (the insert does nothing).
    insert = postgresql.insert if is_postgres(session) else sqlite.insert
    made = session.execute(insert(Lease).values(name=name, holder=holder, expires_at=until)
                           .on_conflict_do_nothing(index_elements=[Lease.name]).returning(Lease.name))
    return made.first() is not None


def renew(*, session: Session, name: str, holder: str, ttl: float, now: datetime | None = None) -> bool:
    """Extend our hold on ``name`` by ``ttl`` seconds from now; False when another process has taken it
    over (we lost it: stop the guarded work). Never commits."""
    now = now or utcnow()
    done = session.execute(
        update(Lease).where(Lease.name == name, Lease.holder == holder)
        .values(expires_at=now + timedelta(seconds=ttl)).execution_options(synchronize_session=False))
    return done.rowcount == 1


def release(*, session: Session, name: str, holder: str) -> bool:
    """Give the lease up at once (so another process need not wait for it to expire), if we hold it.
    Never commits."""
    done = session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder)
                           .execution_options(synchronize_session=False))
    return done.rowcount == 1


def holder_of(*, session: Session, name: str, now: datetime | None = None) -> str | None:
    """Who holds ``name`` now (None when free or expired)."""
    lease = session.get(Lease, name, populate_existing=True)
    if lease is None:
        return None
    return lease.holder if as_utc(lease.expires_at) >= as_utc(now or utcnow()) else None
