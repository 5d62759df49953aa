"""The shapes of the NGSI-LD API's fixed answers, for the OpenAPI description. Entities themselves are JSON-LD
whose names depend on the caller's @context, so they are described by the standard, not by a schema here."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class NgsiProblem(BaseModel):
    """An NGSI-LD error (CIM 009 §5.5.2), as application/json."""

    type: str = Field(..., description="https://uri.etsi.org/ngsi-ld/errors/BadRequestData, ResourceNotFound, …")
    title: str
    status: int
    detail: str = Field(..., description="what was wrong and how to fix it")


class NotUpdated(BaseModel):
    attributeName: str  # noqa: N815 - the standard's member name
    reason: str


class UpdateResult(BaseModel):
    """The answer of an update that changed some attributes and not others (207)."""

    updated: list[str]
    notUpdated: list[NotUpdated]  # noqa: N815


class BatchEntityError(BaseModel):
    entityId: str | None  # noqa: N815
    error: NgsiProblem


class BatchOperationResult(BaseModel):
    """The answer of a batch operation that failed for some entities (207)."""

    success: list[str]
    errors: list[BatchEntityError]


class ContextInfo(BaseModel):
    """An @context kept by the twin (``/jsonldContexts?details=true``)."""

    id: str
    url: str
    localId: str  # noqa: N815
    kind: str
    createdAt: str | None = None  # noqa: N815
    lastUsage: str | None = None  # noqa: N815
    numberOfHits: int = 0  # noqa: N815
    extra: dict[str, Any] | None = None
