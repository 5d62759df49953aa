"""The audit log: append-only rows, each hash covering its content and the previous hash.

Appends run in their own short transaction (so a served read is recorded even if the request
later fails) under a process lock and, on PostgreSQL, an advisory lock that orders writers."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from citybase.core.timeutil import as_utc, utcnow
from citybase.security.models import AuditEntry

GENESIS = "0" * 64
_LOCK = threading.Lock()
_PG_LOCK_KEY = 0x0C17_BA5E


def _digest(prev_hash: str, seq: int, at: datetime, actor: str, roles: str, action: str,
            subject_type: str, subject_ids: str, fields: str, request_id: str) -> str:
    body = json.dumps([seq, as_utc(at).strftime("%Y-%m-%dT%H:%M:%S.%f"), actor, roles, action, subject_type,
                       subject_ids, fields, request_id], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def record(engine: Engine, *, actor: str, roles: str, action: str, subject_type: str,
           subject_ids: list[str] | list[int], fields: list[str], request_id: str) -> AuditEntry:
    """Append one entry (committed before returning)."""
    with _LOCK, Session(engine) as session, session.begin():
        if engine.dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        last = session.execute(select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)).first()
        seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
        at = utcnow()
        ids = ",".join(str(i) for i in subject_ids)
        flds = ",".join(fields)
        entry = AuditEntry(seq=seq, at=at, actor=actor, roles=roles, action=action, subject_type=subject_type,
                           subject_ids=ids, fields=flds, request_id=request_id, prev_hash=prev,
                           hash=_digest(prev, seq, at, actor, roles, action, subject_type, ids, flds, request_id))
        session.add(entry)
    return entry


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    first_broken_seq: int | None = None
    reason: str | None = None


def verify(session: Session, batch: int = 5000) -> Verification:
    """Walk the chain from the start; report the first entry whose link or content does not hold."""
    prev, expected_seq, checked = GENESIS, 1, 0
    last_seq = 0
    while True:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.seq > last_seq).order_by(AuditEntry.seq).limit(batch)).all()
        if not rows:
            return Verification(True, checked)
        for e in rows:
            if e.seq != expected_seq:
                return Verification(False, checked, e.seq, f"entry {expected_seq} is missing (next is {e.seq})")
            if e.prev_hash != prev:
                return Verification(False, checked, e.seq, "prev_hash does not match the previous entry's hash")
            digest = _digest(e.prev_hash, e.seq, e.at, e.actor, e.roles, e.action, e.subject_type,
                             e.subject_ids, e.fields, e.request_id)
            if digest != e.hash:
                return Verification(False, checked, e.seq, "content does not match its hash (the row was edited)")
            prev, expected_seq, checked, last_seq = e.hash, e.seq + 1, checked + 1, e.seq


def entries(session: Session, *, after: int = 0, limit: int = 100, action: str | None = None) -> list[AuditEntry]:
    q = select(AuditEntry).where(AuditEntry.seq > after).order_by(AuditEntry.seq).limit(limit)
    if action:
        q = q.where(AuditEntry.action == action)
    return list(session.scalars(q))
