"""Events identity and audit publish: a signed audit checkpoint, so a copy of the chain head lives outside
this machine (``audit.checkpoint`` hands it to a publisher; the app sends it through the outbox)."""

from __future__ import annotations

from pydantic import BaseModel

AUDIT_CHECKPOINT = "citybase.security.audit.checkpoint"


class AuditCheckpointed(BaseModel):
    """An HMAC-SHA256 over (seq, head hash, entries, time, key id) of the audit chain at a moment."""

    n: int  # the checkpoint number
    seq: int  # the last entry it vouches for
    head_hash: str  # that entry's SHA-256
    entries: int  # how many entries the log held
    at: str  # ISO 8601, UTC, microseconds
    key_id: str
    signature: str  # hex HMAC-SHA256


EVENTS: dict[str, type[BaseModel]] = {AUDIT_CHECKPOINT: AuditCheckpointed}
