"""Structured logs: every record carries the request id and the context id of the work it belongs to.

The ids live in context variables, bound by the API's request middleware (X-Request-ID) or by a consumer
around one event (its Context id), so a plain ``logging.getLogger(__name__).info(...)`` in any service
says which request or event it was for. ``CITYBASE_LOG_FORMAT=json`` writes one JSON object a line."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

request_id_var: ContextVar[str | None] = ContextVar("citybase_request_id", default=None)
context_id_var: ContextVar[str | None] = ContextVar("citybase_context_id", default=None)

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is logged as a field.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime",
                                                                             "request_id", "context_id", "ids"}


@contextmanager
def bound(*, request_id: str | None = None, context_id: str | None = None) -> Iterator[None]:
    """Within the block, log records carry these ids (the previous ones come back after it)."""
    tokens = []
    if request_id is not None:
        tokens.append((request_id_var, request_id_var.set(request_id)))
    if context_id is not None:
        tokens.append((context_id_var, context_id_var.set(context_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Puts the current request id and context id on every record passing through the handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.context_id = context_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, request_id, context_id, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "context_id": getattr(record, "context_id", None),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool | None) else repr(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Readable lines: ``time level logger [request context] message``; the ids only when there are some."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s%(ids)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        rid, cid = getattr(record, "request_id", None), getattr(record, "context_id", None)
        ids = [f"req={rid}"] if rid else []
        if cid and cid != rid:
            ids.append(f"ctx={cid}")
        record.ids = f" [{' '.join(ids)}]" if ids else ""
        return super().format(record)


def setup_logging(fmt: str = "text", level: str = "INFO", stream: IO[str] | None = None) -> logging.Handler:
    """Send every logger's records (uvicorn's too) to one handler on the root logger, replacing ours from
    an earlier call; returns the handler."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_citybase", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._citybase = True  # type: ignore[attr-defined]
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # let uvicorn's records reach the root handler
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    return handler
