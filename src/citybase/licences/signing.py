"""Signed licences that anyone verifies offline: Ed25519 (RFC 8032) over a compact token.

Why Ed25519 and not SM2/SM3: no maintained Python library does SM2 (``cryptography`` does not; ``gmssl`` is a
pure-Python package last released in 2023), and WebCrypto has no SM2 at all, so an SM2 licence could not be
verified offline by a browser page without shipping our own elliptic-curve JavaScript. Ed25519 is in
``cryptography`` (OpenSSL) and in WebCrypto (Chromium 137+, Firefox 129+, Safari 17+), so the same signature
is checked by ``citybase licences verify``, by the verifier page and by any phone browser.

The token is JWS-like, four dot-separated parts, all URL-safe: ``CBL1.<kid>.<payload>.<signature>``, where
``payload`` is base64url of the licence's canonical JSON (keys sorted, no spaces, UTF-8) and the signature
is Ed25519 over the ASCII text ``CBL1.<kid>.<payload>``: the key id and the format are signed too, and a
verifier never re-serialises anything. ``kid`` is the first 8 hex digits of the SHA-256 of the raw public key.

The private key lives outside the database: ``CITYBASE_LICENCE_SIGNING_KEY`` (one or more 32-byte seeds in
hex or base64, separated by commas; the first signs, the others only verify, for rotation), else the file
``<data_dir>/licence-signing.key`` made on first use with mode 0600."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from citybase.core.errors import CitybaseError
from citybase.core.i18n import Msg
from citybase.core.keyfiles import read_key_texts

log = logging.getLogger("citybase.licences")

FORMAT = "CBL1"
ALGORITHM = "Ed25519"
ENV_KEY = "CITYBASE_LICENCE_SIGNING_KEY"
KEY_FILE = "licence-signing.key"
_HEX = re.compile(r"[0-9a-fA-F]{64}")


class SigningKeyError(CitybaseError):
    """The licence signing key is missing or not a key (a deployment fault)."""

    status = 500
    type = "https://citybase.dev/problems/licence-signing-key"
    title = Msg("Licence signing key unusable")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def canonical(content: dict[str, Any]) -> bytes:
    """The licence content as signed: JSON, keys sorted, no insignificant spaces, UTF-8 (no \\u escapes)."""
    return json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: bytes) -> str:
    """The short public id of a key: 8 hex digits of the SHA-256 of its raw 32 bytes."""
    return hashlib.sha256(public).hexdigest()[:8]


@dataclass(frozen=True)
class PublicKey:
    """A key that verifies licences, as published (raw 32 bytes, base64url)."""

    kid: str
    key: Ed25519PublicKey = field(repr=False, compare=False)

    @property
    def raw(self) -> bytes:
        return raw_public(self.key)

    def as_json(self) -> dict[str, str]:
        return {"kid": self.kid, "alg": ALGORITHM, "x": b64url(self.raw)}

    @classmethod
    def of_raw(cls, raw: bytes) -> PublicKey:
        return cls(key_id(raw), Ed25519PublicKey.from_public_bytes(raw))


@dataclass(frozen=True)
class SigningKeys:
    """The key that signs new licences, and the public keys that verify old ones, by id."""

    signing: Ed25519PrivateKey = field(repr=False)
    public: dict[str, PublicKey]
    source: str
    kid: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kid", key_id(raw_public(self.signing.public_key())))

    def sign(self, content: dict[str, Any]) -> str:
        """The token of ``content``: ``CBL1.<kid>.<payload>.<signature>``."""
        head = f"{FORMAT}.{self.kid}.{b64url(canonical(content))}"
        return head + "." + b64url(self.signing.sign(head.encode("ascii")))


def _seed(text: str, source: str) -> bytes:
    t = text.strip()
    raw: bytes | None = None
    if _HEX.fullmatch(t):
        raw = bytes.fromhex(t)
    else:
        try:
            raw = unb64url(t.replace("+", "-").replace("/", "_").rstrip("="))
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or len(raw) != 32:
        raise SigningKeyError(Msg('the licence signing key in {source} is not a 32-byte Ed25519 seed in hex or base64', source=source),
                              fix=Msg('Generate one with `python -c "import secrets; print(secrets.token_hex(32))"`.'))
    return raw


def _keys(texts: list[str], source: str) -> SigningKeys:
    privs = [Ed25519PrivateKey.from_private_bytes(_seed(t, source)) for t in texts]
    if not privs:
        raise SigningKeyError(Msg('{source} holds no licence signing key', source=source),
                              fix=Msg('Set {env} or remove the empty file to have one made.', env=ENV_KEY))
    pubs = [PublicKey.of_raw(raw_public(k.public_key())) for k in privs]
    return SigningKeys(privs[0], {p.kid: p for p in pubs}, source)


def key_file(data_dir: Path) -> Path:
    return Path(data_dir) / KEY_FILE


@cache
def load_keys(data_dir: Path | None = None) -> SigningKeys:
    """The signing keys from ``CITYBASE_LICENCE_SIGNING_KEY`` or the key file (made on first use), once per
    process and folder."""
    if data_dir is None:
        from citybase.core.settings import load_settings

        data_dir = load_settings().data_dir
    found = read_key_texts(ENV_KEY, key_file(data_dir), what="licence signing key")
    assert found is not None  # made when missing
    return _keys(*found)


@dataclass(frozen=True)
class Checked:
    """What an offline check of a token found: ``ok`` with the content, or the reason it fails."""

    ok: bool
    reason: str  # "valid", "malformed", "unknown_key", "bad_signature"
    kid: str | None = None
    content: dict[str, Any] | None = None


def verify_token(token: str, keys: dict[str, PublicKey]) -> Checked:
    """Check a token's signature with the published keys; never raises on bad input (a verifier's answer)."""
    t = extract_token(token)
    parts = t.split(".") if t else []
    if len(parts) != 4 or parts[0] != FORMAT:
        return Checked(False, "malformed")
    _, kid, payload, sig = parts
    pub = keys.get(kid)
    if pub is None:
        return Checked(False, "unknown_key", kid)
    try:
        signature = unb64url(sig)
        pub.key.verify(signature, f"{FORMAT}.{kid}.{payload}".encode("ascii"))
    except (InvalidSignature, ValueError, binascii.Error, UnicodeEncodeError):
        return Checked(False, "bad_signature", kid)
    try:
        content = json.loads(unb64url(payload).decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return Checked(False, "malformed", kid)
    return Checked(True, "valid", kid, content if isinstance(content, dict) else None)


_TOKEN = re.compile(r"CBL1\.[0-9a-f]{8}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def extract_token(text: str) -> str | None:
    """The token in a text: itself, a verifier link ``…/licences/verify#CBL1…``, or a JSON file holding it."""
    if not text:
        return None
    m = _TOKEN.search(text)
    return m.group(0) if m else None
