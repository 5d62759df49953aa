"""Domain errors. Each carries what went wrong and how to fix it (as ``Msg`` templates, shown in the reader's
language); the API renders them as problem+json."""

from __future__ import annotations

from typing import Any

from citybase.core.i18n import Msg


class CitybaseError(Exception):
    """Base of every error a caller can cause; never a 500."""

    status = 400
    type = "about:blank"
    title = Msg("Bad request")

    def __init__(self, detail: str | Msg, *, fix: str | Msg | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail  # a Msg is rendered in the reader's language when shown
        self.fix = fix
        self.extra = extra


class InvalidInput(CitybaseError):
    status = 422
    type = "https://citybase.dev/problems/invalid-input"
    title = Msg("Invalid input")


class InvalidIdentifier(InvalidInput):
    type = "https://citybase.dev/problems/invalid-identifier"
    title = Msg("Invalid identifier")


class NotFound(CitybaseError):
    status = 404
    type = "https://citybase.dev/problems/not-found"
    title = Msg("Not found")


class Conflict(CitybaseError):
    status = 409
    type = "https://citybase.dev/problems/conflict"
    title = Msg("Conflict")


class TooLarge(CitybaseError):
    """What was sent is larger than the endpoint takes (a file over its size limit)."""

    status = 413
    type = "https://citybase.dev/problems/too-large"
    title = Msg("Content too large")


class UnsupportedMediaType(CitybaseError):
    """What was sent is not of a type the endpoint takes (a file whose content is not an allowed type)."""

    status = 415
    type = "https://citybase.dev/problems/unsupported-media-type"
    title = Msg("Unsupported media type")


class Unauthenticated(CitybaseError):
    status = 401
    type = "https://citybase.dev/problems/unauthenticated"
    title = Msg("Authentication required")


class Forbidden(CitybaseError):
    status = 403
    type = "https://citybase.dev/problems/forbidden"
    title = Msg("Forbidden")


class Unavailable(CitybaseError):
    """Something the request needs (the database, the bus) is down for a moment: retry after ``retry_after`` s."""

    status = 503
    type = "https://citybase.dev/problems/unavailable"
    title = Msg("Service unavailable")

    def __init__(self, detail: str, *, fix: str | None = None, retry_after: int = 2, **extra: Any) -> None:
        super().__init__(detail, fix=fix, retry_after=retry_after, **extra)
        self.retry_after = retry_after
