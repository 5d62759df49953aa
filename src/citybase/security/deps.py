"""FastAPI dependencies: the request's session, and the declaration of who may call a route.

Every route takes exactly one ``Allow`` dependency; the app refuses to start otherwise
(deny by default), and tests walk every route × role against these declarations."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from citybase.bus import Context
from citybase.core.errors import Forbidden, Unauthenticated
from citybase.core.i18n import Msg
from citybase.kernel import outbox
from citybase.security.roles import PUBLIC, ROLES
from citybase.security.service import ANONYMOUS, Principal, authenticate
from citybase.storage.db import stale_conflict

_bearer = HTTPBearer(auto_error=False, description="A citybase API token: `Authorization: Bearer cb_…`")


def get_session(request: Request) -> Iterator[Session]:
    """One session per request; committed when the handler returns, rolled back when it raises. Events the
    request queues (``kernel.outbox.queue``) carry its context: the request id and the caller."""
    session = request.app.state.sessions()
    outbox.bind_context(session, lambda: request_context(request))
    try:
        yield session
        session.commit()
    except StaleDataError as exc:  # a concurrent request changed the same row first (optimistic versioning)
        session.rollback()
        raise stale_conflict(exc) from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def request_id(request: Request) -> str:
    rid = getattr(request.state, "request_id", None)
    if rid is None:
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        request.state.request_id = rid
    return rid


def request_context(request: Request) -> Context:
    """The context of what this request causes: its id, and the caller once ``Allow`` has identified them."""
    principal = getattr(request.state, "principal", None)
    user_id = getattr(principal, "user_id", None)
    return Context(id=request_id(request), user_id=str(user_id) if user_id else None)


class Allow:
    """Who may call a route: role names, or ``public`` for anyone."""

    def __init__(self, *roles: str) -> None:
        unknown = [r for r in roles if r not in ROLES and r != PUBLIC]
        if unknown or not roles:
            raise ValueError(f"Allow() needs known roles, got {roles!r}")
        self.roles = frozenset(roles)

    @property
    def public(self) -> bool:
        return PUBLIC in self.roles

    def __repr__(self) -> str:
        return f"Allow({', '.join(sorted(self.roles))})"

    def __call__(self, request: Request,
                 credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Principal:
        request_id(request)
        if credentials is None:
            if self.public:
                request.state.principal = ANONYMOUS
                return ANONYMOUS
            raise Unauthenticated(
                Msg('this endpoint needs a bearer token'),
                fix=Msg("Send 'Authorization: Bearer <token>'; an admin issues tokens with POST /api/v1/users/{{id}}/tokens."),
            )
        with request.app.state.sessions() as session:
            principal = authenticate(session, credentials.credentials)
        request.state.principal = principal
        if not self.public and not (principal.roles & self.roles):
            raise Forbidden(
                Msg('role(s) {value} may not call this endpoint', value=', '.join(sorted(principal.roles)) or 'none'),
                fix=Msg('It is open to: {items}. Ask an admin for the right role.', items=', '.join(sorted(self.roles))),
                allowed_roles=sorted(self.roles),
            )
        return principal


def allow(*roles: str) -> Allow:
    """Declare who may call a route: ``p: Principal = Depends(allow("admin"))``."""
    return Allow(*roles)
