"""Events classification publishes: none yet. A retrained model is picked up when a process starts; a
``citybase.ops.classifier.retrained`` event telling every process to reload belongs here (issue 6, item 4)."""

from __future__ import annotations

from pydantic import BaseModel

EVENTS: dict[str, type[BaseModel]] = {}
