"""The event catalogue: every subject the installed domains publish, with its typed schema, as an AsyncAPI
3.0 document generated from the descriptors (``Domain.events``), so it cannot drift from the code."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from citybase.kernel.domain import Domain, domains

ENVELOPE = {  # what every message on the bus carries around its data (bus.base.Event)
    "type": "object", "required": ["id", "subject", "time", "data", "context"],
    "properties": {
        "id": {"type": "string", "description": "the event id; consumers are idempotent on it"},
        "subject": {"type": "string"},
        "time": {"type": "string", "format": "date-time", "description": "UTC"},
        "context": {"type": "object", "required": ["id"], "properties": {
            "id": {"type": "string", "description": "the request or delivery that caused the event"},
            "user_id": {"type": ["string", "null"]}, "parent_id": {"type": ["string", "null"]}}},
        "data": {"description": "the subject's payload, below"},
    },
}


def _key(subject: str) -> str:
    return subject.replace(".", "_").replace(">", "all").replace("*", "any")


def asyncapi(installed: Iterable[Domain] | None = None, *, version: str = "0") -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every event of ``installed`` (default: every installed domain)."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    schemas: dict[str, Any] = {"Envelope": ENVELOPE}
    for dom in installed if installed is not None else domains():
        for subject, model in sorted(dom.events.items()):
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                continue
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in schema.pop("$defs", {}).items():
                schemas.setdefault(name, sub)
            schemas.setdefault(model.__name__, schema)
            key = _key(subject)
            channels[key] = {
                "address": subject, "title": f"{dom.title}: {subject}",
                "description": (model.__doc__ or "").strip(),
                "messages": {model.__name__: {
                    "name": model.__name__, "contentType": "application/json",
                    "payload": {"allOf": [{"$ref": "#/components/schemas/Envelope"},
                                          {"type": "object", "properties": {
                                              "data": {"$ref": f"#/components/schemas/{model.__name__}"}}}]}}},
                "x-domain": dom.name,
            }
            operations[f"receive_{key}"] = {"action": "receive", "channel": {"$ref": f"#/channels/{key}"},
                                            "summary": f"subscribe to {subject}"}
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "citybase events", "version": version,
                 "description": "Every event the platform publishes (NATS JetStream subjects; the in-process bus "
                                "uses the same subjects). Generated from the domains' typed event schemas."},
        "defaultContentType": "application/json",
        "channels": channels, "operations": operations, "components": {"schemas": schemas},
    }
