"""Every error as RFC 9457 application/problem+json, saying what was wrong and how to fix it."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from citybase.core.errors import CitybaseError
from citybase.core.i18n import render, translate
from citybase.kernel import faults
from citybase.storage.db import stale_conflict

log = logging.getLogger("citybase.api")
PROBLEM = "application/problem+json"
ECHO_LIMIT = 200  # characters of a refused input echoed back


class InputError(BaseModel):
    where: str = Field(..., description="which parameter, e.g. query parameter 'page' or body parameter 'lon'")
    problem: str
    input: str | int | float | bool | None = Field(None, description="the value refused (shortened), if it "
                                                   "can be shown")


class ProblemDetails(BaseModel):
    """The body of every error of the API (RFC 9457), as application/problem+json."""

    type: str = Field(..., description="a URI naming the kind of problem")
    title: str
    status: int
    detail: str = Field(..., description="what was wrong")
    fix: str | None = Field(None, description="what to do about it")
    instance: str | None = Field(None, description="the path of the request")
    errors: list[InputError] | None = Field(None, description="each refused input (422 only)")


def problem(status: int, title: str, detail: str, *, type_: str = "about:blank", fix: str | None = None,
            instance: str | None = None, **extra: Any) -> JSONResponse:
    """A problem+json answer; its title, detail and fix in the request's language (core.i18n)."""
    body: dict[str, Any] = {"type": type_, "title": translate(title), "status": status, "detail": render(detail)}
    if fix:
        body["fix"] = render(fix)
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if extra.get("retry_after") is not None:
        headers["Retry-After"] = str(extra["retry_after"])
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _where(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("query", "path", "body", "header", "cookie"):
        return f"{parts[0]} parameter '{'.'.join(parts[1:])}'" if len(parts) > 1 else parts[0]
    return ".".join(parts)


def install(app: FastAPI) -> None:
    """Register the problem+json handlers on the app."""

    @app.exception_handler(CitybaseError)
    async def _domain(request: Request, exc: CitybaseError) -> JSONResponse:
        return problem(exc.status, exc.title, exc.detail, type_=exc.type, fix=exc.fix,
                       instance=request.url.path, **exc.extra)

    async def _transient(request: Request, exc: Exception) -> JSONResponse:
        err = faults.unavailable(exc)
        if err is None:  # a subclass that is a bug after all (never happens for the classes below)
            raise exc  # the catch-all middleware answers it as a 500
        log.warning("503 on %s %s: %s: %s", request.method, request.url.path, exc.__class__.__name__,
                    str(exc).splitlines()[0] if str(exc) else "")
        return await _domain(request, err)

    for cls in faults.TRANSIENT:  # the database or the bus is down for a moment: 503, retry later
        app.add_exception_handler(cls, _transient)

    @app.exception_handler(StaleDataError)
    async def _stale(request: Request, exc: StaleDataError) -> JSONResponse:
        # Optimistic versioning: a concurrent request changed the row first; this one stored nothing.
        return await _domain(request, stale_conflict(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"where": _where(tuple(e.get("loc", ()))), "problem": e.get("msg", ""),
                   "input": _echo(e.get("input"))} for e in exc.errors()]
        detail = "; ".join(f"{e['where']}: {e['problem']}" for e in errors)
        return problem(422, "Invalid request", detail, type_="https://citybase.dev/problems/invalid-input",
                       fix="Correct the listed parameters; the OpenAPI description at /docs shows each one.",
                       instance=request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return problem(404, "Not found", f"there is no resource at {request.url.path}",
                           fix="See the API description at /docs for the available paths.", instance=request.url.path)
        if exc.status_code == 405:
            return problem(405, "Method not allowed", f"{request.method} is not allowed on {request.url.path}",
                           fix="See /docs for the methods this path accepts.", instance=request.url.path)
        if exc.status_code == 400:  # FastAPI could not read the body (not UTF-8, not a form): like malformed JSON
            return problem(422, "Invalid request", f"the body could not be read ({exc.detail})",
                           type_="https://citybase.dev/problems/invalid-input",
                           fix="Send UTF-8 JSON (or a well-formed form where the endpoint takes one).",
                           instance=request.url.path)
        return problem(exc.status_code, "HTTP error", str(exc.detail), instance=request.url.path)

    app.add_middleware(CatchAll)


def _echo(value: Any) -> str | int | float | bool | None:
    """The refused input as it can be shown in JSON: shortened, and nothing JSON cannot carry (NaN,
    Infinity, unpaired surrogates) — echoing those made the 422 itself fail as a 500."""
    if isinstance(value, bool | int) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return None
        return value if len(value) <= ECHO_LIMIT else value[:ECHO_LIMIT] + "…"
    return None


class CatchAll:
    """Answer an unexpected error with a problem+json 500 and keep the connection open.

    Starlette's handler for ``Exception`` re-raises after answering, so the server closes the
    keep-alive connection of the client; this middleware sits inside it and does not re-raise."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            path = scope.get("path", "")
            log.exception("unhandled error on %s %s", scope.get("method"), path)
            if started:
                raise  # half an answer is out: only closing the connection tells the client
            response = problem(500, "Internal error", "the server failed while handling this request",
                               fix="This is a bug in citybase, not in your request; report it with the time "
                                   "and path.", instance=path)
            await response(scope, receive, send)
