"""Every error as RFC 9457 application/problem+json, saying what was wrong and how to fix it."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from citybase.core.errors import CitybaseError
from citybase.core.i18n import render, translate
from citybase.kernel import faults
from citybase.storage.db import stale_conflict

log = logging.getLogger("citybase.api")
PROBLEM = "application/problem+json"


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
            return await _unexpected(request, exc)
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
                   "input": e.get("input") if isinstance(e.get("input"), str | int | float | None) else None}
                  for e in exc.errors()]
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
        return problem(exc.status_code, "HTTP error", str(exc.detail), instance=request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "Internal error", "the server failed while handling this request",
                       fix="This is a bug in citybase, not in your request; report it with the time and path.",
                       instance=request.url.path)
