"""Events the catalogue publishes: none yet. Category and rule changes are read by every process from the
database (the rules through a version check); a ``citybase.ops.catalogue.changed`` event for cache
invalidation across processes belongs here when it comes (issue 6, item 4)."""

from __future__ import annotations

from pydantic import BaseModel

EVENTS: dict[str, type[BaseModel]] = {}
