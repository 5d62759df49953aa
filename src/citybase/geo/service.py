"""The spatial base's promises: the area tree, GeoJSON, point → area, buildings and address matching.

Plain functions taking ``session`` keyword-only; they never commit (the caller's boundary does).
The in-process indexes are built once per database and dropped by :func:`reset_caches`."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from shapely.geometry import shape
from sqlalchemy import Engine, Select
from sqlalchemy.orm import Session

from citybase.core.errors import InvalidInput, NotFound
from citybase.core.i18n import Msg
from citybase.geo.address import AddressIndex, Match
from citybase.geo.lookup import GridIndex
from citybase.geo.models import LEVELS, Area, Building
from citybase.geo.repository import GeoRepository, geo_repository

_cache: dict[tuple[Any, str], Any] = {}
_cache_lock = threading.Lock()


def reset_caches() -> None:
    """Forget the in-process indexes (after the areas or buildings changed)."""
    with _cache_lock:
        _cache.clear()


_build_locks: dict[tuple[Any, str], threading.Lock] = {}


def _cached(session: Session, name: str, build: Any) -> Any:
    """The cached value, built once: concurrent first callers wait for one build instead of all building."""
    bind: Engine = session.get_bind()  # type: ignore[assignment]
    key = (bind.url, name)
    value = _cache.get(key)
    if value is not None:
        return value
    with _cache_lock:
        lock = _build_locks.setdefault(key, threading.Lock())
    with lock:
        if key not in _cache:
            _cache[key] = build()
        return _cache[key]


def warm_up(*, session: Session) -> None:
    """Build the in-process indexes now (at start-up) rather than on the first requests."""
    if geo_repository(session).areas(level="district"):
        grid_index(session=session)
        _ancestors(session)
        address_index(session=session)


def get_area(*, session: Session, code: str) -> Area:
    """The area with this code; NotFound otherwise."""
    area = geo_repository(session).area_by_code(code)
    if area is None:
        raise NotFound(Msg('no area with code {code!r}', code=code), fix=Msg('List codes with GET /api/v1/areas.'))
    return area


def list_areas(*, session: Session, level: str | None = None, parent_code: str | None = None) -> list[Area]:
    """Areas filtered by level and/or parent, ordered by code."""
    if level and level not in LEVELS:
        raise InvalidInput(Msg('unknown level {level!r}', level=level), fix=Msg('Use one of: {items}.', items=', '.join(LEVELS)))
    parent_id = get_area(session=session, code=parent_code).id if parent_code else None
    return geo_repository(session).areas(level=level, parent_id=parent_id)


def area_tree(*, session: Session, depth: int = 3) -> list[dict[str, Any]]:
    """District → streets → communities (→ grids at depth 4), each node with code, name, level, children."""
    areas = geo_repository(session).areas()
    by_parent: dict[int | None, list[Area]] = {}
    for a in areas:
        by_parent.setdefault(a.parent_id, []).append(a)

    def node(a: Area, d: int) -> dict[str, Any]:
        kids = by_parent.get(a.id, []) if d < depth else []
        return {"code": a.code, "name": a.name, "level": a.level,
                "children": [node(k, d + 1) for k in kids], "child_count": len(by_parent.get(a.id, []))}

    return [node(a, 1) for a in by_parent.get(None, [])]


def areas_geojson(*, session: Session, level: str, parent_code: str | None = None) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of the areas of one level (properties: code, name, level, parent_code)."""
    areas = list_areas(session=session, level=level, parent_code=parent_code)
    repo = geo_repository(session)
    parents = {a.id: a.code for a in repo.areas(level=LEVELS[LEVELS.index(level) - 1])} if level != "district" else {}
    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "id": a.code, "geometry": json.loads(a.geometry),
             "properties": {"code": a.code, "name": a.name, "level": a.level,
                            "parent_code": parents.get(a.parent_id), "area_km2": round(a.area_km2, 4)}}
            for a in areas
        ],
    }


def grid_index(*, session: Session) -> GridIndex:
    """The in-process point → grid index of this database (built on first use)."""

    def build() -> GridIndex:
        rows = geo_repository(session).grid_shapes()
        if not rows:
            raise NotFound(Msg('the city has no grids yet'), fix=Msg('Run `citybase generate` or load the spatial base.'))
        return GridIndex.build([r[0] for r in rows], [shape(json.loads(r[1])) for r in rows])

    return _cached(session, "grid_index", build)


@dataclass(frozen=True)
class Location:
    grid: Area
    community: Area
    street: Area
    district: Area


def areas_by_id(*, session: Session) -> dict[int, Area]:
    """Every area by id (cached in process, like the lookup index)."""
    return _ancestors(session)


def _ancestors(session: Session) -> dict[int, Area]:
    def build() -> dict[int, Area]:
        areas = geo_repository(session).areas()
        for a in areas:  # shared by every later session: a rollback of this one must not expire them
            session.expunge(a)
        return {a.id: a for a in areas}

    return _cached(session, "areas_by_id", build)


def locate(*, session: Session, lon: float, lat: float) -> Location:
    """Grid, community, street and district containing the point; NotFound outside the district."""
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidInput(Msg('({lon}, {lat}) is not a WGS-84 point', lon=lon, lat=lat), fix=Msg('Give lon in [-180, 180] and lat in [-90, 90].'))
    gid = grid_index(session=session).locate(lon, lat)
    if gid is None:
        raise NotFound(Msg('point ({lon}, {lat}) is outside every grid of the city', lon=lon, lat=lat),
                       fix=Msg('Check the coordinates are WGS-84 longitude/latitude inside the district.'))
    by_id = _ancestors(session)
    grid = by_id[gid]
    community = by_id[grid.parent_id]  # type: ignore[index]
    street = by_id[community.parent_id]  # type: ignore[index]
    district = by_id[street.parent_id]  # type: ignore[index]
    return Location(grid, community, street, district)


def locate_in_database(*, session: Session, lon: float, lat: float) -> dict[str, Area]:
    """The same answer as :func:`locate`, computed by the engine (PostGIS, or bbox + shapely on SQLite)."""
    return {a.level: a for a in geo_repository(session).areas_at(lon, lat)}


def address_index(*, session: Session) -> AddressIndex:
    """The in-process address index of this database (built on first use)."""
    def build() -> AddressIndex:
        repo = geo_repository(session)
        prefixes = [a.name for a in repo.areas(level="district")]
        return AddressIndex(repo.address_rows(), prefixes)

    return _cached(session, "address_index", build)


def match_address(*, session: Session, text: str, limit: int = 5) -> list[Match]:
    """Buildings matching an address in words: exact (score 100) or fuzzy, best first."""
    if not text or not text.strip():
        raise InvalidInput(Msg('the address text is empty'), fix=Msg('Give an address such as 漕溪北路398弄12号.'))
    return address_index(session=session).match(text, limit=limit)


def area_codes(*, session: Session) -> dict[int, str]:
    """Every area's code by its id."""
    return {a.id: a.code for a in geo_repository(session).areas()}


def area_counts(*, session: Session) -> dict[str, int]:
    """How many areas of each level."""
    return geo_repository(session).area_counts()


def district(*, session: Session) -> Area | None:
    """The district at the root of the area tree, if the city is loaded."""
    found = geo_repository(session).areas(level="district")
    return found[0] if found else None


def list_buildings(*, session: Session, area_code: str | None = None, road: str | None = None,
                   use: str | None = None, page: int = 1, page_size: int = 50) -> tuple[list[Building], int]:
    """One page of buildings (by id) inside an area (street, community or grid code), on a road, of a use,
    and how many match in all; NotFound for an unknown area code."""
    repo = geo_repository(session)
    area = get_area(session=session, code=area_code) if area_code else None
    return repo.page(repo.buildings_query(area=area, road=road, use=use), page, page_size)


def grid_codes(*, session: Session, ids: list[int] | None = None) -> dict[int, str]:
    """The codes of the grids (those with these ids, or every grid) by id, read from the database."""
    return geo_repository(session).area_codes(level="grid", ids=ids)


def building_count(*, session: Session) -> int:
    """How many buildings the city has."""
    return geo_repository(session).count(geo_repository(session).buildings_query())


def building_ids_in_area(area: Area) -> Select:
    """A subquery of the ids of buildings inside a street, community or grid (for other domains' filters)."""
    return GeoRepository.building_ids_in_area(area)


ADDRESS_MIN_SCORE = 75.0  # below this, a fuzzy match is a guess, not a building


def building_at_address(*, session: Session, text: str, min_score: float = ADDRESS_MIN_SCORE) -> Building | None:
    """The best-matching building for an address in words, or None when no match scores ``min_score``."""
    matches = match_address(session=session, text=text, limit=1)
    if not matches or matches[0].score < min_score:
        return None
    return get_building(session=session, building_id=matches[0].building_id)


def get_building(*, session: Session, building_id: int) -> Building:
    """The building with this id; NotFound otherwise."""
    b = geo_repository(session).building_by_id(building_id)
    if b is None:
        raise NotFound(Msg('no building with id {building_id}', building_id=building_id), fix=Msg('Search buildings with GET /api/v1/buildings.'))
    return b
