"""What an operator sees of the running API: a request id on every request and its logs, the request
metrics, and ``GET /metrics`` in the Prometheus text format."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Response
from starlette.datastructures import MutableHeaders
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
    route: Any = scope.get("route")
    return getattr(route, "path", None) or UNMATCHED


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
            await send(message)

        # Inside a request the event Context id is the request id (architecture.md), so both are bound.
        with bound(request_id=rid, context_id=rid):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                metrics.observe_request(scope["method"], _route_template(scope), status,
                                        time.perf_counter() - started)
