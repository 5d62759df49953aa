"""API shapes of classification."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SuggestionRead(BaseModel):
    """One suggested category for a text."""

    code: str = Field(description="the 5-digit category code")
    confidence: float = Field(description="0 to 1, rounded to 4 places")
