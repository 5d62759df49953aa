"""The registration's shape as the OpenAPI describes it (the body itself is JSON-LD, checked by the service)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RegistrationInfo(BaseModel):
    """A ContextSourceRegistration (CIM 009 §5.2.9), as answered in the caller's @context."""

    id: str
    type: str = "ContextSourceRegistration"
    endpoint: str = Field(..., description="the NGSI-LD broker that answers for the registered entities")
    mode: str = Field("inclusive", description="inclusive, exclusive, redirect or auxiliary")
    information: list[dict] = Field(..., description="entities (id, idPattern, type) with propertyNames and "
                                                     "relationshipNames")
