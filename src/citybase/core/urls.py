"""URLs in messages and logs: never with the user, password or token they may carry."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact(url: str, what: str = "URL") -> str:
    """The URL without user and password (``***@host``); ``<unparsable {what}>`` when it cannot be read."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"<unparsable {what}>"
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))
