"""What an operator sees of the running API: a request id on every request and its logs, the request
metrics, and ``GET /metrics`` in the Prometheus text format."""

from __future__ import annotations

import re
import time
import uuid
import weakref
from typing import Any

from fastapi import APIRouter, Depends, Response
from fastapi.routing import iter_route_contexts
from starlette.datastructures import MutableHeaders
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from citybase.kernel import metrics
from citybase.kernel.logs import bound
from citybase.security.deps import allow
from citybase.security.roles import PUBLIC

REQUEST_ID_HEADER = "x-request-id"
# A caller's id is kept only if it is short and plain, so it cannot forge log lines or bloat labels.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

router = APIRouter()


@router.get("/metrics", tags=["platform"], summary="Metrics in the Prometheus text format",
            response_class=Response, responses={200: {"content": {metrics.CONTENT_TYPE: {}}}})
def prometheus_metrics(_: object = Depends(allow(PUBLIC))) -> Response:
    return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)


def _incoming_id(scope: Scope) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == b"x-request-id":
            text = value.decode("latin-1")
            return text if _SAFE_ID.match(text) else None
    return None


def _route_template(scope: Scope) -> str:
    """The matched route's full path template (``/api/v1/areas/{code}``), never the raw path."""
    route: Any = scope.get("route")
    if route is None:
        return UNMATCHED
    candidates = _templates(scope.get("app")).get(id(route))
    if candidates:
        path = scope.get("path", "")
        for regex, template in candidates:
            if len(candidates) == 1 or regex.match(path):
                return template
    return getattr(route, "path", None) or UNMATCHED


_TEMPLATES: weakref.WeakKeyDictionary[Any, dict[int, list[tuple[re.Pattern[str], str]]]] = weakref.WeakKeyDictionary()


def _templates(app: Any) -> dict[int, list[tuple[re.Pattern[str], str]]]:
    # FastAPI keeps included routers nested: a route knows only its own path, the app the prefixes.
    if app is None or not hasattr(app, "routes"):
        return {}
    found = _TEMPLATES.get(app)
    if found is None:
        found = {}
        for ctx in iter_route_contexts(app.routes):
            found.setdefault(id(ctx.original_route), []).append((compile_path(ctx.path)[0], ctx.path))
        _TEMPLATES[app] = found
    return found


UNMATCHED = metrics.UNMATCHED


class RequestContextMiddleware:
    """Gives every HTTP request an id (the caller's X-Request-ID if plain, else a new one), binds it for
    the logs, returns it as X-Request-ID, and counts the request by method, route template and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _incoming_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid  # what security.deps.request_id(request) returns
        status = 500  # unless a response starts: an exception escaped to the server's error handler
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["x-request-id"] = rid
                # Starlette lowercases header names; Location goes out in its usual spelling, which some
                # clients (the ETSI NGSI-LD suite among them) look up case-sensitively
                message["headers"] = [(b"Location", v) if k == b"location" else (k, v) for k, v in message["headers"]]
            await send(message)

        # Inside a request the event Context id is the request id (architecture.md), so both are bound.
        with bound(request_id=rid, context_id=rid):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                metrics.observe_request(scope["method"], _route_template(scope), status,
                                        time.perf_counter() - started)
