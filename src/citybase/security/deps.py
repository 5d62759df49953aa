"""FastAPI dependencies: the request's session, and the declaration of who may call a route.

Every route takes exactly one ``Allow`` dependency; the app refuses to start otherwise
(deny by default), and tests walk every route × role against these declarations."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

from fastapi import Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from citybase.bus import Context
from citybase.core.errors import Forbidden, Unauthenticated
from citybase.core.i18n import Msg
from citybase.kernel import outbox
from citybase.security.oidc import looks_like_jwt
from citybase.security.roles import PUBLIC, ROLES
from citybase.security.service import ANONYMOUS, Principal, authenticate
from citybase.storage.db import stale_conflict

_bearer = HTTPBearer(auto_error=False, description="A citybase API token (`Authorization: Bearer cb_…`), or an ID token of the city's identity "
                                                     "provider when 统一身份认证 is on")


def get_session(request: Request) -> Iterator[Session]:
    """One session per request; committed when the handler returns, rolled back when it raises. Events the
    request queues (``kernel.outbox.queue``) carry its context: the request id and the caller."""
    session = request.app.state.sessions()
    request.state.session = session  # a route class that answers errors itself rolls it back (twin.router)
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


def authenticate_request(request: Request, secret: str) -> Principal:
    """The caller a bearer secret stands for: a citybase token, or (when the deployment turned 统一身份认证 on,
    ``app.state.oidc``) an ID token of the city's identity provider (see ``security.oidc``)."""
    sign_in = getattr(request.app.state, "oidc", None)
    if sign_in is not None and looks_like_jwt(secret):
        return sign_in.sign_in(engine=request.app.state.engine, sessions=request.app.state.sessions, token=secret,
                               request_id=request_id(request))
    with request.app.state.sessions() as session:
        return authenticate(session, secret)


class Allow:
    """Who may call a route: role names, or ``public`` for anyone."""

    error_media_type = "application/problem+json"  # how the route answers a caller it refuses

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
        return self.admit(request, authenticate_request(request, credentials.credentials))

    def admit(self, request: Request, principal: Principal) -> Principal:
        """The authenticated caller, kept on the request; Forbidden unless one of its roles may call the route."""
        request.state.principal = principal
        if not self.public and not (principal.roles & self.roles):
            raise Forbidden(
                Msg('role(s) {value} may not call this endpoint', value=', '.join(sorted(principal.roles)) or 'none'),
                fix=Msg('It is open to: {items}. Ask an admin for the right role.', items=', '.join(sorted(self.roles))),
                allowed_roles=sorted(self.roles),
            )
        return principal


class AllowOpen(Allow):
    """``Allow`` for a standard API that a deployment may open to callers without a token (an NGSI-LD broker
    behind the city's own gateway, a conformance bench): such a caller is admitted, as anonymous, exactly
    while ``open_when()`` is true (a setting read per request); callers with a token are checked as always.
    Its refusals come in the route's own format (``error_media_type``)."""

    def __init__(self, *roles: str, open_when: Callable[[], bool], error_media_type: str) -> None:
        super().__init__(*roles)
        self.open_when = open_when
        self.error_media_type = error_media_type

    def __repr__(self) -> str:
        return f"AllowOpen({', '.join(sorted(self.roles))})"

    def __call__(self, request: Request,
                 credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Principal:
        if credentials is None and self.open_when():
            request_id(request)
            request.state.principal = ANONYMOUS
            return ANONYMOUS
        return super().__call__(request, credentials)


class AnsweringRoute(APIRoute):
    """A route of a standard API that answers every failure, dependencies included, in its own format
    (``answer``); the request's session is rolled back first, because ``get_session`` ends it after the answer
    and would otherwise commit what failed (a failed flush would make that commit raise)."""

    def answer(self, request: Request, exc: Exception) -> Response:
        raise NotImplementedError

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:  # noqa: BLE001 - every error is turned into the standard's answer
                session = getattr(request.state, "session", None)
                if session is not None:
                    await run_in_threadpool(session.rollback)
                return self.answer(request, exc)

        return route


Params = Callable[[Request], Awaitable[list[tuple[str, str]]]]


class AllowKey(Allow):
    """``Allow`` for a route whose callers send their token as a request parameter (GeoReport v2's
    ``api_key``, in the form or the query) instead of a bearer header: the same roles, the same walk.

    ``params`` reads the request's parameters by the route's own rules (size, type, charset; its errors are
    the route's) and the handler finds them in ``request.state.params``; the token is the last non-empty
    ``name``. ``refused`` makes the route's error for a missing token (None) or one not accepted (the
    ``Unauthenticated`` saying why); a role that may not call the route is ``Forbidden`` as with ``Allow``."""

    def __init__(self, *roles: str, name: str, params: Params,
                 refused: Callable[[Unauthenticated | None], Exception]) -> None:
        super().__init__(*roles)
        self.name, self.params, self.refused = name, params, refused

    def __repr__(self) -> str:
        return f"AllowKey({', '.join(sorted(self.roles))}; {self.name})"

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        request_id(request)
        items = await self.params(request)
        request.state.params = items
        secret = next((v.strip() for k, v in reversed(items) if k == self.name and v.strip()), None)
        if secret is None:
            if self.public:
                request.state.principal = ANONYMOUS
                return ANONYMOUS
            raise self.refused(None)
        try:
            principal = await run_in_threadpool(self._authenticate, request, secret)
        except Unauthenticated as exc:
            raise self.refused(exc) from None
        return self.admit(request, principal)

    @staticmethod
    def _authenticate(request: Request, secret: str) -> Principal:
        return authenticate_request(request, secret)


def allow(*roles: str) -> Allow:
    """Declare who may call a route: ``p: Principal = Depends(allow("admin"))``."""
    return Allow(*roles)


def allow_open(*roles: str, open_when: Callable[[], bool], error_media_type: str) -> AllowOpen:
    """Declare the roles of a route that ``open_when()`` may open to anonymous callers (see ``AllowOpen``)."""
    return AllowOpen(*roles, open_when=open_when, error_media_type=error_media_type)


def allow_key(*roles: str, name: str, params: Params, refused: Callable[[Unauthenticated | None], Exception],
              ) -> AllowKey:
    """Declare who may call a route that takes its token as the parameter ``name`` (see ``AllowKey``)."""
    return AllowKey(*roles, name=name, params=params, refused=refused)
