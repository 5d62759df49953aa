"""HTTP API of classification (mounted under /api/v1/ops): suggested categories for a text."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from citybase.core.errors import InvalidInput
from citybase.core.i18n import Msg
from citybase.ops.classification import service
from citybase.ops.classification.schemas import SuggestionRead
from citybase.ops.http import _classifier
from citybase.security.deps import allow
from citybase.security.service import Principal

router = APIRouter(prefix="/ops", tags=["一网统管 incident loop"])


@router.post("/classify", response_model=list[SuggestionRead], summary="Suggested categories with confidence for a text")
def classify(body: dict, request: Request, _: Principal = Depends(allow("dispatcher", "grid_inspector", "admin"))) -> list[dict]:
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(Msg('text is missing'), fix=Msg('Send {{"text": "…"}}.'))
    return [{"code": c, "confidence": round(conf, 4)} for c, conf in service.suggest(text, _classifier(request))]
