"""Writes idempotent on a client key: a retry after a lost answer gets the first answer, never a duplicate.

A route looks the key up before it works (``lookup``: the stored answer, or None), does its work, and
stores its answer in the same transaction (``record``). The first of two racing requests to commit wins:
the unique (principal, key) makes the other's ``record`` fail, its transaction (its incident too) is
rolled back and it answers what the winner answered. Keys are kept ``TTL`` (24 h), then pruned."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Integer, String, Text, UniqueConstraint, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from citybase.core.errors import InvalidInput
from citybase.core.i18n import Msg
from citybase.core.timeutil import as_utc, utcnow
from citybase.storage.db import Base

log = logging.getLogger("citybase.idempotency")
TTL = timedelta(hours=24)
HEADER = "Idempotency-Key"
_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII, as the IETF draft's sf-string allows


class IdempotencyKey(Base):
    """One answered write: who sent it under which key, what it was (fingerprint) and what was answered."""

    __tablename__ = "kernel_idempotency"
    __table_args__ = (UniqueConstraint("principal", "key", name="uq_kernel_idempotency_principal_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    principal: Mapped[str] = mapped_column(String(120))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    media_type: Mapped[str] = mapped_column(String(100))
    response: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


@dataclass(frozen=True)
class Answer:
    """A stored answer, replayed as it was first sent."""

    status_code: int
    media_type: str
    body: bytes


def check_key(key: str | None) -> str | None:
    """The client's key as sent, or None without one; InvalidInput unless 1–255 visible ASCII characters."""
    if key is None:
        return None
    key = key.strip()
    if key.startswith('"') and key.endswith('"') and len(key) > 2:
        key = key[1:-1]  # the draft standard quotes it as a structured-field string
    if not _KEY.fullmatch(key):
        raise InvalidInput(Msg('the {HEADER} header must be 1 to 255 visible ASCII characters', HEADER=HEADER),
                           fix=Msg('Send a fresh UUID per request, e.g. {HEADER}: 8e03978e-40d5-43e8-bc93-6894a57f9324.', HEADER=HEADER))
    return key


def fingerprint(*parts: Any) -> str:
    """A stable digest of what a request asked for (method, path, the parsed body), to tell a retry from a reuse."""
    text = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _reused(key: str) -> InvalidInput:
    return InvalidInput(Msg('{HEADER} {key!r} was already used for a different request', HEADER=HEADER, key=key[:60]),
                        fix=Msg('Send a new key with a new request; to get the first answer again, resend the first request unchanged with its key.'), idempotency_key=key[:255])


def lookup(*, session: Session, principal: str, key: str, fingerprint: str, ttl: timedelta = TTL,
           now: datetime | None = None) -> Answer | None:
    """The answer stored for (principal, key) in the last ``ttl``, or None; InvalidInput if that key was used
    for a different request. Reads only (takes no write lock)."""
    row = session.scalar(select(IdempotencyKey).where(IdempotencyKey.principal == principal,
                                                      IdempotencyKey.key == key))
    if row is None or as_utc(row.created_at) < (now or utcnow()) - ttl:
        return None
    if row.fingerprint != fingerprint:
        raise _reused(key)
    return Answer(row.status_code, row.media_type, row.response.encode("utf-8"))


def record(*, session: Session, principal: str, key: str, fingerprint: str, answer: Answer,
           ttl: timedelta = TTL, now: datetime | None = None) -> Answer | None:
    """Store the answer in the caller's transaction (the caller commits). If a concurrent request with the same
    key got there first, the caller's transaction is rolled back and that request's answer is returned: the
    caller must answer it instead of its own. InvalidInput if the key went to a different request."""
    now = now or utcnow()
    session.execute(delete(IdempotencyKey).where(  # an expired use of the key no longer counts
        IdempotencyKey.principal == principal, IdempotencyKey.key == key, IdempotencyKey.created_at < now - ttl))
    session.add(IdempotencyKey(principal=principal, key=key, fingerprint=fingerprint,
                               status_code=answer.status_code, media_type=answer.media_type,
                               response=answer.body.decode("utf-8"), created_at=now))
    try:
        session.flush()
    except IntegrityError:
        session.rollback()  # the winner's incident stands; ours must not
        log.info("a concurrent request with the same key by %s was stored first; answering its answer", principal)
        first = lookup(session=session, principal=principal, key=key, fingerprint=fingerprint, ttl=ttl, now=now)
        if first is None:  # cannot happen: the unique key was taken by a committed row
            raise
        return first
    return None


def prune(*, session: Session, now: datetime | None = None) -> int:
    """Forget keys older than ``TTL``; returns how many (the caller commits)."""
    result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < (now or utcnow()) - TTL))
    return result.rowcount or 0
