"""Tables of the twin: tenants, entities (latest state), the history of every attribute instance, and the
JSON-LD @contexts hosted or cached here. JSON documents are JSONB on PostgreSQL (GIN-indexed for ``q``) and
JSON text on SQLite; PostgreSQL also keeps a PostGIS ``geom`` of each entity's location (added by the
migration, written by the repository) for ``geoQ``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from citybase.storage.db import Base

TZ = DateTime(timezone=True)
DOC = JSON().with_variant(JSONB(), "postgresql")
BIGID = BigInteger().with_variant(Integer(), "sqlite")  # SQLite's rowid alias must be INTEGER


class TwinTenant(Base):
    """A tenant (``NGSILD-Tenant``), created by its first write; the default tenant is ``""``."""

    __tablename__ = "twin_tenants"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(TZ)


class TwinEntity(Base):
    """The latest state of an entity, in the stored form of ``twin.representation``."""

    __tablename__ = "twin_entities"
    __table_args__ = (
        UniqueConstraint("tenant", "entity_id", name="uq_twin_entities_tenant_entity_id"),
        Index("ix_twin_entities_bbox", "tenant", "min_lon", "max_lon", "min_lat", "max_lat"),
        Index("ix_twin_entities_tenant_pk", "tenant", "pk"),  # a tenant's entities in creation order
    )

    pk: Mapped[int] = mapped_column(BIGID, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(1024))
    types: Mapped[list[str]] = mapped_column(DOC)  # type IRIs
    scopes: Mapped[list[str] | None] = mapped_column(DOC)
    attrs: Mapped[dict[str, Any]] = mapped_column(DOC)  # attribute IRI -> [instance, ...]
    created_at: Mapped[datetime] = mapped_column(TZ)
    modified_at: Mapped[datetime] = mapped_column(TZ)
    # the bounding box of the location GeoProperty (default instance), for geoQ on SQLite
    min_lon: Mapped[float | None] = mapped_column(Float)
    min_lat: Mapped[float | None] = mapped_column(Float)
    max_lon: Mapped[float | None] = mapped_column(Float)
    max_lat: Mapped[float | None] = mapped_column(Float)


class TwinHistory(Base):
    """Every attribute instance as it was written (the temporal API's source); ``deleted`` marks a deletion."""

    __tablename__ = "twin_history"
    __table_args__ = (
        Index("ix_twin_history_entity", "tenant", "entity_id", "attr", "recorded_at"),
        Index("ix_twin_history_recorded_at", "recorded_at"),
    )

    id: Mapped[int] = mapped_column(BIGID, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(1024))
    types: Mapped[list[str]] = mapped_column(DOC)
    attr: Mapped[str] = mapped_column(String(1024))
    dataset_id: Mapped[str | None] = mapped_column(String(1024))
    instance_id: Mapped[str] = mapped_column(String(80), unique=True)
    observed_at: Mapped[datetime | None] = mapped_column(TZ)
    recorded_at: Mapped[datetime] = mapped_column(TZ)
    instance: Mapped[dict[str, Any]] = mapped_column(DOC)
    number: Mapped[float | None] = mapped_column(Float)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class TwinContext(Base):
    """A JSON-LD @context known here: ``Hosted`` (posted to /jsonldContexts), ``Cached`` (fetched on first use
    or preloaded from a folder) or ``ImplicitlyCreated`` (an inline context of a subscription or registration)."""

    __tablename__ = "twin_contexts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(String(2048), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text)  # the JSON document {"@context": ...}
    created_at: Mapped[datetime] = mapped_column(TZ)
    last_used_at: Mapped[datetime | None] = mapped_column(TZ)
    hits: Mapped[int] = mapped_column(Integer, default=0)
