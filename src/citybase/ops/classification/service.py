"""Classification: the categories a text suggests, from the trained model when one is loaded, else
from the catalogue's keywords. Pure functions: no session, nothing written."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from citybase.ops.catalogue.defaults import CATEGORIES


class Suggester(Protocol):
    """Anything that suggests categories for a text (``classifier.TextClassifier`` is one)."""

    def suggest(self, text: str, k: int = 3) -> list[Any]: ...


def keyword_suggest(text: str, categories: Iterable[Any] = CATEGORIES, k: int = 3) -> list[tuple[str, float]]:
    """A transparent fallback when no trained model is loaded: catalogue keywords and names."""
    scores = []
    for c in categories:
        hits = sum(1 for w in c.keywords if w in text) + (2 if c.name in text else 0)
        if hits:
            scores.append((c.code, hits))
    total = sum(s for _, s in scores) or 1
    scores.sort(key=lambda x: -x[1])
    return [(code, round(s / total, 3)) for code, s in scores[:k]]


def suggest(text: str, classifier: Suggester | None) -> list[tuple[str, float]]:
    """(category code, confidence) pairs for a text, most likely first."""
    if classifier is not None:
        return [(s.code, float(s.confidence)) for s in classifier.suggest(text, k=3)]
    return keyword_suggest(text)
