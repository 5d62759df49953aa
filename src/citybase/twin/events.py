"""Events the twin publishes (through the outbox, in the transaction of the change): one per entity changed,
naming the attributes touched, so that subscriptions, federation peers and other domains follow the twin
without polling it. They carry names, not values: a consumer reads the entity (or its history) itself."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

ENTITY_CHANGED = "citybase.twin.entity_changed"


class EntityChanged(BaseModel):
    """An entity of the twin was created, updated or deleted."""

    tenant: str  # "" for the default tenant
    id: str  # the entity's URI
    types: list[str]  # type IRIs
    op: Literal["create", "update", "replace", "delete"]
    attrs: list[str]  # attribute IRIs written or deleted (all of them on create, replace and delete)
    modified_at: str  # ISO 8601, UTC


EVENTS: dict[str, type[BaseModel]] = {ENTITY_CHANGED: EntityChanged}
