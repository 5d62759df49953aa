"""Events of the spatial base: it publishes none yet (the areas and buildings change only by a load, which
resets the in-process indexes in its own process)."""

from __future__ import annotations

from pydantic import BaseModel

EVENTS: dict[str, type[BaseModel]] = {}
