"""The SQLite writer lock belongs to a session's transaction, not to a thread, and never waits for ever."""

from __future__ import annotations

import gc
import threading
import uuid

import pytest

from citybase.core.errors import Unavailable
from citybase.core.timeutil import utcnow
from citybase.security.models import User
from citybase.storage.db import make_sessionmaker, writer_lock
from citybase.storage.migrate import upgrade


def _user() -> User:
    return User(username=f"u{uuid.uuid4().hex[:10]}", display_name="x", roles="analyst", active=True,
                created_at=utcnow())


def _in_thread(fn) -> None:
    t = threading.Thread(target=fn)
    t.start()
    t.join(timeout=60)
    assert not t.is_alive()


@pytest.fixture
def sqlite_db(empty_db):
    upgrade(empty_db.engine)
    return empty_db


@pytest.mark.parametrize("empty_db", ["sqlite"], indirect=True)
def test_a_session_flushed_in_one_thread_and_committed_in_another_frees_the_writer_lock(sqlite_db):
    sessions = make_sessionmaker(sqlite_db.engine, writer_wait=30)
    session = sessions()
    _in_thread(lambda: (session.add(_user()), session.flush()))  # the endpoint's thread
    assert writer_lock(sqlite_db.engine).held
    _in_thread(lambda: (session.commit(), session.close()))  # the dependency's exit, in another thread
    assert not writer_lock(sqlite_db.engine).held
    with sessions() as other:  # and the next writer is not kept waiting
        other.add(_user())
        other.commit()


@pytest.mark.parametrize("empty_db", ["sqlite"], indirect=True)
def test_a_writer_kept_waiting_gets_unavailable_with_a_retry_hint(sqlite_db):
    sessions = make_sessionmaker(sqlite_db.engine, writer_wait=0.2)
    holder = sessions()
    holder.add(_user())
    holder.flush()
    waiting = sessions()
    waiting.add(_user())
    with pytest.raises(Unavailable) as err:
        waiting.flush()
    assert err.value.status == 503 and err.value.extra["retry_after"] > 0
    waiting.rollback()
    holder.commit()
    waiting.add(_user())
    waiting.commit()  # the lock is free again once the holder committed
    holder.close()
    waiting.close()


@pytest.mark.parametrize("empty_db", ["sqlite"], indirect=True)
def test_a_session_dropped_without_ending_its_transaction_does_not_keep_the_lock(sqlite_db):
    sessions = make_sessionmaker(sqlite_db.engine, writer_wait=30)

    def abandon() -> None:
        s = sessions()
        s.add(_user())
        s.flush()

    abandon()
    gc.collect()
    assert not writer_lock(sqlite_db.engine).held
