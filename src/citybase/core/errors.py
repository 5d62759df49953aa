"""Domain errors. Each carries what went wrong and how to fix it; the API renders them as problem+json."""

from __future__ import annotations

from typing import Any


class CitybaseError(Exception):
    """Base of every error a caller can cause; never a 500."""

    status = 400
    type = "about:blank"
    title = "Bad request"

    def __init__(self, detail: str, *, fix: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fix = fix
        self.extra = extra


class InvalidInput(CitybaseError):
    status = 422
    type = "https://citybase.dev/problems/invalid-input"
    title = "Invalid input"


class InvalidIdentifier(InvalidInput):
    type = "https://citybase.dev/problems/invalid-identifier"
    title = "Invalid identifier"


class NotFound(CitybaseError):
    status = 404
    type = "https://citybase.dev/problems/not-found"
    title = "Not found"


class Conflict(CitybaseError):
    status = 409
    type = "https://citybase.dev/problems/conflict"
    title = "Conflict"


class Unauthenticated(CitybaseError):
    status = 401
    type = "https://citybase.dev/problems/unauthenticated"
    title = "Authentication required"


class Forbidden(CitybaseError):
    status = 403
    type = "https://citybase.dev/problems/forbidden"
    title = "Forbidden"


class Unavailable(CitybaseError):
    """The server cannot do the work right now (database or bus busy or down); the client may retry."""

    status = 503
    type = "https://citybase.dev/problems/unavailable"
    title = "Service unavailable"

    def __init__(self, detail: str, *, fix: str | None = None, retry_after: int = 2, **extra: Any) -> None:
        super().__init__(detail, fix=fix, retry_after=retry_after, **extra)
        self.retry_after = retry_after
