"""Events the metrics publish: none (they are read on request). A periodic ``citybase.ops.metrics.daily``
summary for the screens would be declared here."""

from __future__ import annotations

from pydantic import BaseModel

EVENTS: dict[str, type[BaseModel]] = {}
