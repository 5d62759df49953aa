"""The audit log: append-only rows, each hash covering its content and the previous hash, and signed
checkpoints of the chain head that prove its tail.

Appends run in their own short transaction (so a served read is recorded even if the request
later fails) under a process lock and, on PostgreSQL, an advisory lock that orders writers.

The chain alone shows an edited or missing row, but not the newest rows removed, nor a chain recomputed
after an edit (SHA-256 needs no key). A checkpoint is an HMAC over (seq, head hash, entries, time, key id)
with a key the database does not hold (see ``audit_keys``); it is kept in three places — the
``audit_checkpoints`` table, the anchor file outside the database, and the bus — so ``verify`` finds a
truncated or rewritten log as far as the newest checkpoint that survives in any of them. Entries written
after the newest checkpoint are not yet proven: checkpoints are written on a timer and at shutdown."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from citybase.core.errors import CitybaseError
from citybase.core.timeutil import as_utc, utcnow
from citybase.security.audit_keys import Keyring, load_keyring
from citybase.security.events import AUDIT_CHECKPOINT, AuditCheckpointed
from citybase.security.models import AuditCheckpoint, AuditEntry
from citybase.storage.db import has_table, make_sessionmaker

log = logging.getLogger("citybase.security.audit")

GENESIS = "0" * 64
_LOCK = threading.Lock()
_PG_LOCK_KEY = 0x0C17_BA5E
_CP_LOCK = threading.Lock()
_PG_CP_LOCK_KEY = 0x0C17_BA5F
ENV_ANCHOR = "CITYBASE_AUDIT_ANCHOR"
ANCHOR_FILE = "audit-anchor.jsonl"
CHECKPOINT_SUBJECT = AUDIT_CHECKPOINT
_SIGNED = "citybase.audit.checkpoint/1"  # names what the signature covers, so it cannot be replayed elsewhere
_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


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


# ---------------------------------------------------------------------------------------------- the chain walk


_ENTRY_COLUMNS = (AuditEntry.seq, AuditEntry.at, AuditEntry.actor, AuditEntry.roles, AuditEntry.action,
                  AuditEntry.subject_type, AuditEntry.subject_ids, AuditEntry.fields, AuditEntry.request_id,
                  AuditEntry.prev_hash, AuditEntry.hash)  # plain rows: a long walk fills no identity map


@dataclass
class _Walk:
    checked: int = 0
    end_seq: int = 0
    end_hash: str = GENESIS
    hashes: dict[int, str] = field(default_factory=dict)  # the hash found at each wanted seq
    broken_seq: int | None = None
    reason: str | None = None


def _walk(session: Session, *, after: int = 0, prev: str = GENESIS, upto: int | None = None,
          wanted: frozenset[int] | set[int] = frozenset(), batch: int = 5000) -> _Walk:
    """Follow the chain from entry ``after`` (whose hash is ``prev``) to ``upto`` or the end; stop at a break."""
    w = _Walk(end_seq=after, end_hash=prev)
    expected = after + 1
    while True:
        q = select(*_ENTRY_COLUMNS).where(AuditEntry.seq > w.end_seq).order_by(AuditEntry.seq).limit(batch)
        if upto is not None:
            q = q.where(AuditEntry.seq <= upto)
        rows = session.execute(q).all()
        if not rows:
            return w
        for seq, at, actor, roles, action, subject_type, subject_ids, fields, request_id, prev_hash, hash_ in rows:
            if seq != expected:
                w.broken_seq, w.reason = seq, f"entry {expected} is missing (next is {seq})"
                return w
            if prev_hash != w.end_hash:
                w.broken_seq, w.reason = seq, "prev_hash does not match the previous entry's hash"
                return w
            if _digest(prev_hash, seq, at, actor, roles, action, subject_type, subject_ids, fields,
                       request_id) != hash_:
                w.broken_seq, w.reason = seq, "content does not match its hash (the row was edited)"
                return w
            if seq in wanted:
                w.hashes[seq] = hash_
            w.end_seq, w.end_hash, w.checked, expected = seq, hash_, w.checked + 1, seq + 1


# ---------------------------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement: the log held ``entries`` entries, the last one ``seq`` with hash ``head_hash``."""

    n: int  # the checkpoint number (its row id)
    seq: int
    head_hash: str
    entries: int
    at: datetime
    key_id: str
    signature: str

    @property
    def at_text(self) -> str:
        return as_utc(self.at).strftime(_TIME)

    @property
    def label(self) -> str:
        return f"checkpoint #{self.n} (seq {self.seq}, time {as_utc(self.at):%Y-%m-%d %H:%M:%S} UTC)"

    def message(self) -> bytes:
        """The bytes the signature covers."""
        return json.dumps([_SIGNED, self.seq, self.head_hash, self.entries, self.at_text, self.key_id],
                          separators=(",", ":")).encode()

    def to_json(self, db: str) -> dict[str, Any]:
        return {"n": self.n, "db": db, "seq": self.seq, "head_hash": self.head_hash, "entries": self.entries,
                "at": self.at_text, "key_id": self.key_id, "signature": self.signature}

    @staticmethod
    def from_json(obj: dict[str, Any]) -> Checkpoint:
        """Parse an anchor line's object; raise ValueError (KeyError, TypeError) when it is not one."""
        at = datetime.strptime(str(obj["at"]), _TIME).replace(tzinfo=UTC)
        seq, n, entries = (obj[k] for k in ("seq", "n", "entries"))
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (seq, n, entries)):
            raise ValueError("n, seq and entries must be integers")
        return Checkpoint(n, seq, str(obj["head_hash"]), entries, at, str(obj["key_id"]), str(obj["signature"]))


def _from_row(r: AuditCheckpoint) -> Checkpoint:
    return Checkpoint(r.id, r.seq, r.head_hash, r.entries, as_utc(r.at), r.key_id, r.signature)


def checkpoint_event(cp: Checkpoint) -> tuple[str, dict[str, Any]]:
    """The bus subject and data announcing a checkpoint (a copy of it outside this machine)."""
    return CHECKPOINT_SUBJECT, AuditCheckpointed(n=cp.n, seq=cp.seq, head_hash=cp.head_hash, entries=cp.entries,
                                                 at=cp.at_text, key_id=cp.key_id, signature=cp.signature).model_dump()


def anchor_file(data_dir: Path | None = None) -> Path:
    """The anchor file: ``CITYBASE_AUDIT_ANCHOR``, else ``<data_dir>/audit-anchor.jsonl``."""
    env = os.environ.get(ENV_ANCHOR, "").strip()
    if env:
        return Path(env)
    if data_dir is None:
        from citybase.core.settings import load_settings

        data_dir = load_settings().data_dir
    return Path(data_dir) / ANCHOR_FILE


def database_id(bind: Engine | Session) -> str:
    """The database's URL without its password: anchor lines of other databases sharing the file are skipped."""
    engine = bind.get_bind() if isinstance(bind, Session) else bind
    return engine.url.set(password=None).render_as_string(hide_password=False)


def _append_anchor(path: Path, cp: Checkpoint, db: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(cp.to_json(db), ensure_ascii=False, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one write with O_APPEND: lines of concurrent writers never interleave
        os.fsync(fd)
    finally:
        os.close(fd)


def read_anchor(path: Path, db: str) -> tuple[list[Checkpoint], int, list[str]]:
    """The checkpoints of database ``db`` in the anchor file, the count of other databases' lines, and problems."""
    if not path.exists():
        return [], 0, []
    found: list[Checkpoint] = []
    others = 0
    problems: list[str] = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                if obj.get("db") != db:
                    others += 1
                    continue
                found.append(Checkpoint.from_json(obj))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                problems.append(f"line {no} of the anchor file {path} is not a checkpoint ({exc}): "
                                "the file was damaged or edited")
    return found, others, problems


class AuditChainBroken(CitybaseError):
    """The chain does not hold where a new checkpoint would vouch for it."""

    status = 409
    type = "https://citybase.dev/problems/audit-chain-broken"
    title = "Audit chain broken"


def checkpoint(engine: Engine, *, data_dir: Path | None = None, keyring: Keyring | None = None,
               anchor: Path | None = None, publish: Callable[[Checkpoint], None] | None = None) -> Checkpoint | None:
    """Sign the chain head if it moved since the last checkpoint: commit it, append it to the anchor file,
    then hand it to ``publish``. None when there is nothing new. Checks the entries since the last valid
    checkpoint first and raises AuditChainBroken rather than vouch for a broken chain. Own transaction."""
    keyring = keyring or load_keyring(data_dir)
    assert keyring is not None  # load_keyring creates a key when none exists
    anchor = anchor or anchor_file(data_dir)
    with _CP_LOCK, make_sessionmaker(engine)() as session, session.begin():
        if engine.dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_CP_LOCK_KEY})
        head = session.execute(select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)).first()
        if head is None:
            return None
        head_seq, head_hash = head
        rows = session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(50)).all()
        last = next(iter(rows), None)
        if last is not None and last.seq == head_seq and last.head_hash == head_hash:
            return None
        # Start from the newest checkpoint that still holds (a valid signature and its entry unchanged).
        after, prev = 0, GENESIS
        for r in rows:
            cp = _from_row(r)
            if r.seq <= head_seq and keyring.verify(cp.key_id, cp.message(), cp.signature):
                at_seq = session.scalar(select(AuditEntry.hash).where(AuditEntry.seq == r.seq))
                if at_seq == r.head_hash:
                    after, prev = r.seq, r.head_hash
                    break
        w = _walk(session, after=after, prev=prev, upto=head_seq)
        if w.broken_seq is not None or w.end_seq != head_seq:
            raise AuditChainBroken(f"no checkpoint written: the audit chain is broken at entry {w.broken_seq}: "
                                   f"{w.reason}", fix="run `citybase audit verify` and investigate before signing")
        at = utcnow()
        draft = Checkpoint(0, head_seq, head_hash, head_seq, at, keyring.signing.id, "")
        row = AuditCheckpoint(seq=head_seq, head_hash=head_hash, entries=head_seq, at=at, key_id=keyring.signing.id,
                              signature=keyring.signing.sign(draft.message()))
        session.add(row)
        session.flush()
        cp = _from_row(row)
    _append_anchor(anchor, cp, database_id(engine))
    if publish is not None:
        publish(cp)
    return cp


def checkpoints(session: Session) -> list[Checkpoint]:
    """Every checkpoint in the database, oldest first."""
    if not has_table(session.get_bind(), AuditCheckpoint.__tablename__):
        return []
    return [_from_row(r) for r in session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id))]


# ---------------------------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class Verification:
    """The verdict: ``ok`` when the chain holds and every checkpoint holds against it.

    ``reason`` is the first of ``problems`` (earliest in the log first); ``notes`` are not failures."""

    ok: bool
    checked: int
    first_broken_seq: int | None = None
    reason: str | None = None
    checkpoints: int = 0  # checkpoints that hold
    last_good: Checkpoint | None = None
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def _trust(last_good: Checkpoint | None) -> str:
    if last_good is None:
        return "no checkpoint vouches for any entry before it"
    return f"last good {last_good.label}; entries after it cannot be trusted"


def verify(session: Session, batch: int = 5000, *, keyring: Keyring | None = None, anchor: Path | None = None,
           data_dir: Path | None = None) -> Verification:
    """Walk the chain from the start and check every checkpoint (database and anchor file) against it:
    report a broken link, a truncated tail, a rewritten chain, or a checkpoint that is forged or missing.
    Read-only; the key is loaded but never created."""
    keyring = keyring or load_keyring(data_dir, create=False)
    anchor = anchor or anchor_file(data_dir)
    db = database_id(session)
    notes: list[str] = []
    if not has_table(session.get_bind(), AuditCheckpoint.__tablename__):
        notes.append("the database has no audit_checkpoints table yet (run `citybase db upgrade`)")
    in_db = checkpoints(session)
    in_anchor, others, anchor_problems = read_anchor(anchor, db)
    if others:
        notes.append(f"{others} lines of other databases in the anchor file {anchor} were skipped")

    # One checkpoint may be in both places; what it signs and its signature identify it (an edited copy is another).
    where: dict[bytes, tuple[Checkpoint, set[str]]] = {}
    for cp, place in [(cp, "database") for cp in in_db] + [(cp, "anchor") for cp in in_anchor]:
        where.setdefault(cp.message() + cp.signature.encode(), (cp, set()))[1].add(place)

    late: list[str] = []  # problems of single checkpoints, reported after the chain's
    signed: list[Checkpoint] = []
    for cp, places in sorted(where.values(), key=lambda v: (v[0].seq, v[0].n)):
        held = keyring.verify(cp.key_id, cp.message(), cp.signature) if keyring else None
        if held is None:
            have = (f"it has {', '.join(sorted(keyring.keys))} from {keyring.source}" if keyring
                    else "no audit key is set up here")
            late.append(f"{cp.label} is signed with key id {cp.key_id}, which this verifier does not have ({have}); "
                        f"set CITYBASE_AUDIT_KEY to the key with id {cp.key_id}")
            continue
        if not held:
            late.append(f"{cp.label} does not hold under key {cp.key_id}: the checkpoint was forged or edited")
            continue
        signed.append(cp)
        if places == {"anchor"}:
            late.append(f"{cp.label} is in the anchor file but not in the database: checkpoints were deleted "
                        "from the database")
        elif places == {"database"} and anchor.exists():
            notes.append(f"{cp.label} is in the database but not in the anchor file {anchor}")

    w = _walk(session, wanted={cp.seq for cp in signed}, batch=batch)
    log_end = session.scalar(select(func.max(AuditEntry.seq))) or 0
    rewritten = [cp for cp in signed if cp.seq in w.hashes and w.hashes[cp.seq] != cp.head_hash]
    removed = [cp for cp in signed if cp.seq > log_end]
    breaks = [cp.seq for cp in rewritten] + ([log_end + 1] if removed else [])
    if w.broken_seq is not None:
        breaks.append(w.broken_seq)
    first_bad = min(breaks, default=None)
    good = [cp for cp in signed if cp.seq in w.hashes and cp not in rewritten
            and (first_bad is None or cp.seq < first_bad)]
    last_good = max(good, key=lambda cp: (cp.seq, cp.n), default=None)

    chain: list[tuple[int, str]] = []
    if w.broken_seq is not None:
        chain.append((w.broken_seq, f"the chain is broken at entry {w.broken_seq}: {w.reason} ({w.checked} entries "
                                    f"before it are intact); {_trust(last_good)}"))
    for cp in rewritten:
        chain.append((cp.seq, f"the chain was rewritten at or before seq {cp.seq}: {cp.label} signed head "
                              f"{cp.head_hash[:12]}…, the log has {w.hashes[cp.seq][:12]}… there; {_trust(last_good)}"))
    if removed:
        top = max(removed, key=lambda cp: cp.seq)
        chain.append((log_end + 1, f"entries after seq {log_end} were removed: the log ends there, but "
                                     f"{top.label} vouches for {top.entries} entries; {_trust(last_good)}"))
    chain.sort(key=lambda p: p[0])
    problems = tuple([p for _, p in chain] + late + anchor_problems)
    if not problems:
        if w.checked and last_good is None:
            notes.append("no checkpoint yet: removal of the newest entries would go unseen "
                         "(run `citybase audit checkpoint`)")
        elif last_good is not None and w.end_seq > last_good.seq:
            notes.append(f"{w.end_seq - last_good.seq} entries after {last_good.label} are not yet vouched for")
    return Verification(ok=not problems, checked=w.checked, first_broken_seq=first_bad,
                        reason=problems[0] if problems else None, checkpoints=len(good), last_good=last_good,
                        problems=problems, notes=tuple(notes))

