"""Queries of the spatial base. The engine seam: SQLite filters by bounding box and tests the
shape with shapely; PostgreSQL asks PostGIS (GIST index, ST_Intersects)."""

from __future__ import annotations

import json

import shapely
from shapely.geometry import shape
from sqlalchemy import Select, func, select, text
from sqlalchemy.orm import Session

from citybase.geo.models import Area, Building
from citybase.storage.paging import page_of

# the building column that names its area of each level (districts hold every building)
_AREA_COLUMN = {"grid": Building.grid_id, "community": Building.community_id, "street": Building.street_id}


class GeoRepository:
    """Engine-neutral queries; subclasses supply the spatial ones."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def area_by_code(self, code: str) -> Area | None:
        return self.session.scalar(select(Area).where(Area.code == code))

    def area_by_id(self, area_id: int) -> Area | None:
        return self.session.get(Area, area_id)

    def building_by_id(self, building_id: int) -> Building | None:
        return self.session.get(Building, building_id)

    def area_codes(self, *, level: str | None = None, ids: list[int] | None = None) -> dict[int, str]:
        """Area codes by id, of one level and/or of the given ids."""
        q = select(Area.id, Area.code)
        if level:
            q = q.where(Area.level == level)
        if ids is not None:
            q = q.where(Area.id.in_(ids))
        return {i: c for i, c in self.session.execute(q)}

    def areas(self, *, level: str | None = None, parent_id: int | None = None) -> list[Area]:
        q = select(Area).order_by(Area.code)
        if level:
            q = q.where(Area.level == level)
        if parent_id is not None:
            q = q.where(Area.parent_id == parent_id)
        return list(self.session.scalars(q))

    def area_counts(self) -> dict[str, int]:
        rows = self.session.execute(select(Area.level, func.count()).group_by(Area.level))
        return {level: n for level, n in rows}

    @staticmethod
    def building_ids_in_area(area: Area) -> Select:
        """A select of the ids of buildings inside a street, community or grid (every building otherwise)."""
        col = _AREA_COLUMN.get(area.level)
        q = select(Building.id)
        return q.where(col == area.id) if col is not None else q

    def buildings_query(self, *, area: Area | None = None, road: str | None = None, use: str | None = None) -> Select:
        q = select(Building).order_by(Building.id)
        if area is not None:
            col = _AREA_COLUMN.get(area.level)
            if col is not None:
                q = q.where(col == area.id)
        if road:
            q = q.where(Building.road == road)
        if use:
            q = q.where(Building.use == use)
        return q

    def building_by_key(self, key: str) -> Building | None:
        return self.session.scalar(select(Building).where(Building.address_key == key).limit(1))

    def address_rows(self) -> list[tuple[int, str, str, str]]:
        return [tuple(r) for r in self.session.execute(
            select(Building.id, Building.address, Building.address_key, Building.road))]

    def grid_shapes(self) -> list[tuple[int, str]]:
        return [tuple(r) for r in self.session.execute(
            select(Area.id, Area.geometry).where(Area.level == "grid").order_by(Area.id))]

    def count(self, q: Select) -> int:
        return self.session.scalar(select(func.count()).select_from(q.order_by(None).subquery())) or 0

    def page(self, q: Select, page: int, page_size: int) -> tuple[list[Building], int]:
        """The rows of the 1-based page and the query's total."""
        return page_of(self.session, q, page, page_size)

    # --- the spatial seam ---

    def areas_at(self, lon: float, lat: float) -> list[Area]:
        """Every area (any level) whose polygon contains the point, boundary included."""
        raise NotImplementedError

    def sync_geometry(self) -> None:
        """Bring engine-native geometry up to date with the GeoJSON text (no-op without PostGIS)."""


class SqliteGeoRepository(GeoRepository):
    def areas_at(self, lon: float, lat: float) -> list[Area]:
        q = select(Area).where(Area.min_lon <= lon, Area.max_lon >= lon, Area.min_lat <= lat, Area.max_lat >= lat)
        return [a for a in self.session.scalars(q)
                if shapely.intersects_xy(shape(json.loads(a.geometry)), lon, lat)]


class PostgisGeoRepository(GeoRepository):
    def areas_at(self, lon: float, lat: float) -> list[Area]:
        q = select(Area).where(
            text("ST_Intersects(areas.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))")
        ).params(lon=lon, lat=lat)
        return list(self.session.scalars(q))

    def sync_geometry(self) -> None:
        self.session.execute(text(
            "UPDATE areas SET geom = ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON(geometry), 4326)) WHERE geom IS NULL"))
        self.session.execute(text(
            "UPDATE buildings SET geom = ST_SetSRID(ST_MakePoint(lon, lat), 4326) WHERE geom IS NULL"))


def geo_repository(session: Session) -> GeoRepository:
    """The repository for the session's engine."""
    if session.get_bind().dialect.name == "postgresql":
        return PostgisGeoRepository(session)
    return SqliteGeoRepository(session)
