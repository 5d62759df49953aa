"""Tables of the spatial base. Geometry is GeoJSON text plus a bounding box on every engine;
PostgreSQL additionally keeps a PostGIS ``geom`` column (added by the migration, filled by the repository)."""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from citybase.storage.db import Base

LEVELS = ("district", "street", "community", "grid")


class Area(Base):
    __tablename__ = "areas"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    level: Mapped[str] = mapped_column(String(16), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"), index=True)
    geometry: Mapped[str] = mapped_column(Text)  # GeoJSON MultiPolygon, EPSG:4326
    min_lon: Mapped[float] = mapped_column(Float)
    min_lat: Mapped[float] = mapped_column(Float)
    max_lon: Mapped[float] = mapped_column(Float)
    max_lat: Mapped[float] = mapped_column(Float)
    center_lon: Mapped[float] = mapped_column(Float)
    center_lat: Mapped[float] = mapped_column(Float)
    area_km2: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_areas_bbox", "min_lon", "max_lon", "min_lat", "max_lat"),)


class Building(Base):
    __tablename__ = "buildings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    address: Mapped[str] = mapped_column(String(200))
    address_key: Mapped[str] = mapped_column(String(200), index=True)
    road: Mapped[str] = mapped_column(String(64), index=True)
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    floors: Mapped[int] = mapped_column(Integer)
    use: Mapped[str] = mapped_column(String(16))
    grid_id: Mapped[int] = mapped_column(ForeignKey("areas.id"), index=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("areas.id"), index=True)
    street_id: Mapped[int] = mapped_column(ForeignKey("areas.id"), index=True)
