"""Copies the twin keeps in the process, per database (the engine a session is bound to) and key: the
registrations of a tenant (``twin.sources``) and the tenants known to exist.

A change drops the copy where it happens at once and again once its transaction commits (a request running
meanwhile may have read the old rows), and announces the drop to the other processes through the kernel's cache
invalidation (``Domain.caches``), as the other domains' caches do."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from citybase.kernel.runtime import invalidate


def engine_of(session: Session) -> Any:
    bind = session.get_bind()
    return getattr(bind, "engine", bind)


class ProcessCache:
    """Values by (engine, key); ``forget`` drops every copy (the ``Domain.caches`` handler). A value read while
    a drop happened is not kept (it may be the old one)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._by_engine: weakref.WeakKeyDictionary[Any, dict[Any, Any]] = weakref.WeakKeyDictionary()
        self._drops = 0

    def get(self, session: Session, key: Any, load: Callable[[], Any]) -> Any:
        engine = engine_of(session)
        with self._lock:
            values = self._by_engine.get(engine)
            if values is not None and key in values:
                return values[key]
            drops = self._drops
        value = load()
        with self._lock:
            if self._drops == drops:
                self._by_engine.setdefault(engine, {})[key] = value
        return value

    def drop(self, engine: Any) -> None:
        with self._lock:
            self._by_engine.pop(engine, None)
            self._drops += 1

    def forget(self) -> None:
        with self._lock:
            self._by_engine.clear()
            self._drops += 1

    def changed(self, session: Session) -> None:
        """This transaction changes what the copies hold: dropped here now and after the commit, and in every
        other process once the announcement reaches it."""
        engine = engine_of(session)
        self.drop(engine)
        event.listen(session, "after_commit", lambda _s: self.drop(engine), once=True)
        invalidate(session, self.name)


REGISTRATIONS = ProcessCache("twin.sources")


class KnownTenants:
    """Tenants seen to exist, per database: a tenant is never deleted, so once its committed row was read it
    is known for the life of the process. A row this transaction inserted is not taken (it may roll back)."""

    MADE = "twin.tenants_made"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_engine: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()

    def known(self, session: Session, name: str) -> bool:
        with self._lock:
            return name in self._by_engine.get(engine_of(session), ())

    def seen(self, session: Session, name: str) -> None:
        if name in session.info.get(self.MADE, ()):
            return
        with self._lock:
            self._by_engine.setdefault(engine_of(session), set()).add(name)

    def made(self, session: Session, name: str) -> None:
        session.info.setdefault(self.MADE, set()).add(name)


TENANTS = KnownTenants()
