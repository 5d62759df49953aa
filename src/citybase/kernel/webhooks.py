"""Signed webhooks: an event POSTed to an outside system as JSON, signed with HMAC-SHA256 of a shared secret.

Generic: a domain keeps its own subscriptions and delivery log and calls :func:`deliver` once per hook and
attempt. The receiver checks ``X-Citybase-Signature: sha256=<hex>`` over the raw body with :func:`verify`
and de-duplicates on ``X-Citybase-Delivery`` (the event id: a retry sends the same id)."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from citybase.bus import Event

Post = Callable[[str, bytes, dict[str, str]], int]  # (url, body, headers) -> HTTP status
TIMEOUT = 5.0  # seconds for one POST


def body_of(event: Event) -> bytes:
    """The JSON body sent for an event: id, subject, time, data and the context ids (never the user)."""
    return json.dumps({"id": event.id, "subject": event.subject, "time": event.time, "data": event.data,
                       "context": {"id": event.context.id, "parent_id": event.context.parent_id}},
                      ensure_ascii=False).encode()


def sign(secret: str, body: bytes) -> str:
    """The signature header value for a body: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str) -> bool:
    """True when ``signature`` is the one :func:`sign` gives for the body (compared in constant time)."""
    return hmac.compare_digest(sign(secret, body), signature)


def headers_for(event: Event, secret: str, body: bytes) -> dict[str, str]:
    """The headers of one POST: content type, subject, delivery id (the event id) and signature."""
    return {"Content-Type": "application/json", "X-Citybase-Event": event.subject,
            "X-Citybase-Delivery": event.id, "X-Citybase-Signature": sign(secret, body)}


def http_post(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST with urllib and return the HTTP status (an error status is returned, not raised)."""
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:  # noqa: S310 - admin-configured URL
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


@dataclass(frozen=True)
class Attempt:
    """What one POST came to: ``delivered``, ``failed`` (will be retried) or ``gave_up`` (the last try)."""

    status: str
    response_code: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status == "delivered"


def deliver(url: str, secret: str, event: Event, *, attempt: int, max_attempts: int,
            post: Post | None = None) -> Attempt:
    """POST the signed event once and say how it went; never raises for a network or HTTP failure."""
    body = body_of(event)
    code, error = None, None
    try:
        code = (post or http_post)(url, body, headers_for(event, secret, body))
        if not 200 <= code < 300:
            error = f"HTTP {code}"
    except Exception as exc:  # noqa: BLE001 - any network failure is reported and retried
        error = f"{exc.__class__.__name__}: {exc}"[:500]
    status = "delivered" if error is None else ("gave_up" if attempt >= max_attempts else "failed")
    return Attempt(status, code, error)
