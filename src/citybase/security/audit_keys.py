"""The key that signs audit checkpoints, kept outside the database so that database access alone cannot forge one.

``CITYBASE_AUDIT_KEY`` holds one or more keys (hex or base64, separated by commas or spaces); without it the
keys are the lines of ``<data_dir>/audit.key``, a file created on first use with mode 0600. The first key
signs; every key listed verifies, so a key is rotated by putting the new one first and keeping the old."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from citybase.core.errors import CitybaseError
from citybase.core.keyfiles import read_key_texts

log = logging.getLogger("citybase.security.audit")

ENV_KEY = "CITYBASE_AUDIT_KEY"
KEY_FILE = "audit.key"
MIN_KEY_BYTES = 16
_HEX = re.compile(r"[0-9a-fA-F]+")


class AuditKeyError(CitybaseError):
    """The audit key is missing or not a key."""

    status = 500  # a deployment fault, never caused by an API caller
    type = "https://citybase.dev/problems/audit-key"
    title = "Audit key unusable"


@dataclass(frozen=True)
class AuditKey:
    """One HMAC key and its short public id (the first 8 hex digits of its SHA-256)."""

    secret: bytes = field(repr=False)

    @property
    def id(self) -> str:
        return hashlib.sha256(self.secret).hexdigest()[:8]

    def sign(self, message: bytes) -> str:
        """HMAC-SHA256 of ``message``, hex."""
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Keyring:
    """The key that signs new checkpoints and every key that may verify old ones, by id."""

    signing: AuditKey
    keys: dict[str, AuditKey]
    source: str  # where the keys came from, for messages

    def verify(self, key_id: str, message: bytes, signature: str) -> bool | None:
        """True if the signature holds, False if it does not, None when no key has that id."""
        key = self.keys.get(key_id)
        if key is None:
            return None
        return hmac.compare_digest(key.sign(message), signature)


def parse_key(text: str, *, source: str) -> AuditKey:
    """One key from hex or base64 text; at least 16 bytes."""
    text = text.strip()
    raw: bytes | None = None
    if _HEX.fullmatch(text) and len(text) % 2 == 0:
        raw = bytes.fromhex(text)
    else:
        try:
            std = text.replace("-", "+").replace("_", "/")  # URL-safe base64 too
            raw = base64.b64decode(std + "=" * (-len(std) % 4), validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or len(raw) < MIN_KEY_BYTES:
        raise AuditKeyError(f"the audit key in {source} is not a key of at least {MIN_KEY_BYTES} bytes in hex or base64",
                            fix="generate one with `python -c \"import secrets; print(secrets.token_hex(32))\"`")
    return AuditKey(raw)


def _keyring(texts: list[str], source: str) -> Keyring:
    keys = [parse_key(t, source=source) for t in texts]
    if not keys:
        raise AuditKeyError(f"{source} holds no audit key", fix=f"set {ENV_KEY} or remove the empty file to have one made")
    return Keyring(keys[0], {k.id: k for k in keys}, source)


def key_file(data_dir: Path) -> Path:
    """Where the key file lives when ``CITYBASE_AUDIT_KEY`` is not set."""
    return Path(data_dir) / KEY_FILE


def load_keyring(data_dir: Path | None = None, *, create: bool = True) -> Keyring | None:
    """The audit keys from ``CITYBASE_AUDIT_KEY`` or the key file; make the file if ``create`` (else None if absent)."""
    if data_dir is None:
        from citybase.core.settings import load_settings

        data_dir = load_settings().data_dir
    found = read_key_texts(ENV_KEY, key_file(data_dir), what="audit key", create=create)
    return None if found is None else _keyring(*found)
