"""NGSI-LD geo-queries (ETSI GS CIM 009 v1.8 §4.10): ``georel``, ``geometry``, ``coordinates`` and
``geoproperty``, validated once into a :class:`GeoQuery`, then evaluated in Python (:func:`geo_matches`, for
subscriptions and for refining SQLite candidates) or compiled for the database (:func:`geo_to_sql`).

Geometries are WGS84 longitude/latitude. The topological relations (within, contains, intersects, equals,
disjoint, overlaps) are planar on those coordinates, as in GeoJSON and in PostGIS ``geometry``; both sides run
GEOS, so they agree exactly. Distances (``near``) are metres on the WGS84 ellipsoid: PostGIS measures them on
``geography``; in Python the nearest points of the two geometries are found in a local equirectangular
projection and their distance is then measured with the ellipsoid's local radii at the middle latitude.
Point to point this stays within 2e-6 of PostGIS up to 50 km. To lines and polygons there is one more
difference: their edges are straight in longitude/latitude here (as GeoJSON says) but geodesics in
``geography``, which moves the nearest point by under 0.1 m for edges up to 2 km and about 1 m for 10 km
edges (measured against PostGIS; the tests check the point case). Geometries crossing the antimeridian are
not supported.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import shapely
from shapely.errors import GEOSException
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import nearest_points
from sqlalchemy import ColumnElement, and_, cast, func, literal, true
from sqlalchemy.types import UserDefinedType

NGSI_LD = "https://uri.etsi.org/ngsi-ld/"
CORE_GEOPROPERTIES = {name: NGSI_LD + name for name in ("location", "observationSpace", "operationSpace")}
GEORELS = ("near", "within", "contains", "intersects", "equals", "disjoint", "overlaps")
GEOMETRIES = ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon")

_A = 6_378_137.0  # WGS84 semi-major axis, metres
_E2 = 6.694_379_990_14e-3  # WGS84 first eccentricity squared
_DISTANCE = re.compile(r"(maxDistance|minDistance)==(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)")


class GeoQSyntaxError(ValueError):
    """A geo-query the specification does not allow; the message says which parameter is wrong and why,
    ready for an NGSI-LD BadRequestData."""


@dataclass(frozen=True)
class GeoQuery:
    """A validated geo-query: ``georel`` one of :data:`GEORELS`; for ``near`` exactly one of ``max_distance``
    / ``min_distance`` (metres); ``geometry`` the query geometry (prepared for repeated predicates) and
    ``geojson`` the same as GeoJSON; ``geoproperty`` the expanded name of the GeoProperty to test."""

    georel: str
    geometry: BaseGeometry = field(compare=False)
    geojson: dict[str, Any]
    geoproperty: str
    max_distance: float | None = None
    min_distance: float | None = None


def _position(p: Any, where: str) -> None:
    if not isinstance(p, list | tuple) or len(p) not in (2, 3) or not all(
            isinstance(c, int | float) and not isinstance(c, bool) and math.isfinite(c) for c in p):
        raise GeoQSyntaxError(f"coordinates{where} must be a position [longitude, latitude] of numbers, got {json.dumps(p)}")
    if not -180 <= p[0] <= 180:
        raise GeoQSyntaxError(f"longitude {p[0]} at coordinates{where} is out of range [-180, 180]")
    if not -90 <= p[1] <= 90:
        raise GeoQSyntaxError(f"latitude {p[1]} at coordinates{where} is out of range [-90, 90]")


def _list(c: Any, where: str, what: str, least: int = 1) -> list[Any]:
    if not isinstance(c, list | tuple) or len(c) < least:
        raise GeoQSyntaxError(f"coordinates{where} must be a list of at least {least} {what}, got {json.dumps(c)}")
    return list(c)


def _line(c: Any, where: str) -> None:
    for n, p in enumerate(_list(c, where, "positions", 2)):
        _position(p, f"{where}[{n}]")


def _polygon(c: Any, where: str) -> None:
    for n, ring in enumerate(_list(c, where, "linear rings")):
        here = f"{where}[{n}]"
        for m, p in enumerate(_list(ring, here, "positions (a closed ring: first = last)", 4)):
            _position(p, f"{here}[{m}]")
        if list(ring[0]) != list(ring[-1]):
            raise GeoQSyntaxError(f"the polygon ring coordinates{here} is not closed: it starts at {json.dumps(ring[0])} "
                        f"and ends at {json.dumps(ring[-1])}")


def _validate(geometry: str, c: Any) -> None:
    if geometry == "Point":
        _position(c, "")
    elif geometry == "MultiPoint":
        for n, p in enumerate(_list(c, "", "positions")):
            _position(p, f"[{n}]")
    elif geometry == "LineString":
        _line(c, "")
    elif geometry == "MultiLineString":
        for n, line in enumerate(_list(c, "", "line strings")):
            _line(line, f"[{n}]")
    elif geometry == "Polygon":
        _polygon(c, "")
    else:
        for n, polygon in enumerate(_list(c, "", "polygons")):
            _polygon(polygon, f"[{n}]")


def _georel(georel: str) -> tuple[str, float | None, float | None]:
    relation, *modifiers = (georel or "").split(";")
    if not relation:
        raise GeoQSyntaxError(f"georel is required: one of {', '.join(GEORELS)}")
    if relation not in GEORELS:
        raise GeoQSyntaxError(f"unknown georel '{relation}': expected one of {', '.join(GEORELS)}")
    if relation != "near":
        if modifiers:
            raise GeoQSyntaxError(f"georel '{relation}' takes no modifiers, found ';{';'.join(modifiers)}'")
        return relation, None, None
    if len(modifiers) != 1:
        raise GeoQSyntaxError("georel 'near' needs exactly one distance: near;maxDistance==<metres> "
                    "or near;minDistance==<metres>")
    m = _DISTANCE.fullmatch(modifiers[0])
    if not m:
        raise GeoQSyntaxError(f"expected maxDistance==<metres> or minDistance==<metres> after 'near;', found '{modifiers[0]}'")
    metres = float(m.group(2))
    return relation, (metres if m.group(1) == "maxDistance" else None), (metres if m.group(1) == "minDistance" else None)


def parse_geoq(georel: str, geometry: str, coordinates: str | list[Any], geoproperty: str | None,
               expand: Callable[[str], str]) -> GeoQuery:
    """Validate the geo-query parameters of a request (coordinates as JSON text or already a list) into a
    :class:`GeoQuery`; ``geoproperty`` defaults to ``location``; other names than the core GeoProperties go
    through ``expand``. Raises :class:`GeoQSyntaxError`."""
    relation, max_distance, min_distance = _georel(georel)
    if not geometry:
        raise GeoQSyntaxError(f"geometry is required with georel: one of {', '.join(GEOMETRIES)}")
    if geometry not in GEOMETRIES:
        raise GeoQSyntaxError(f"unknown geometry '{geometry}': expected one of {', '.join(GEOMETRIES)}")
    if coordinates is None or coordinates == "" or coordinates == []:
        raise GeoQSyntaxError(f"coordinates are required with geometry '{geometry}'")
    if isinstance(coordinates, str):
        try:
            coordinates = json.loads(coordinates)
        except json.JSONDecodeError as exc:
            raise GeoQSyntaxError(f"coordinates are not valid JSON: {exc.msg} at character {exc.pos}") from None
    _validate(geometry, coordinates)
    geojson = {"type": geometry, "coordinates": coordinates}
    g = shape(geojson)
    if not g.is_valid:
        # a self-touching or self-intersecting ring (as hand-drawn query polygons often are) is repaired, the
        # way PostGIS would read it, rather than refused; what cannot be repaired is an error
        g = shapely.make_valid(g)
        if g.is_empty:
            raise GeoQSyntaxError(f"the {geometry} is not a valid geometry: {shapely.is_valid_reason(shape(geojson))}")
        geojson = json.loads(json.dumps(shapely.geometry.mapping(g)))  # what PostGIS is given too
    shapely.prepare(g)
    name = geoproperty or "location"
    return GeoQuery(relation, g, geojson, CORE_GEOPROPERTIES.get(name) or expand(name), max_distance, min_distance)


# --- Distances -------------------------------------------------------------------------------------------------


def _radii(lat: float) -> tuple[float, float]:
    """Metres per radian east-west (prime vertical radius × cos φ) and north-south (meridian radius) at φ."""
    phi = math.radians(lat)
    w = 1 - _E2 * math.sin(phi) ** 2
    return _A / math.sqrt(w) * math.cos(phi), _A * (1 - _E2) / w ** 1.5


def point_distance(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Metres between two WGS84 points, with the ellipsoid's local radii at the middle latitude: within
    2e-6 (relative) of the geodesic up to 50 km and 1e-4 up to 300 km, which is what a city's ``near`` needs."""
    east, north = _radii((lat1 + lat2) / 2)
    dlon = (lon2 - lon1 + 180) % 360 - 180
    return math.hypot(math.radians(dlon) * east, math.radians(lat2 - lat1) * north)


def distance(a: BaseGeometry, b: BaseGeometry) -> float:
    """Metres between two lon/lat geometries (0 when they touch): nearest points found in a local projection
    centred between them, their distance measured by :func:`point_distance`."""
    if a.geom_type == "Point" and b.geom_type == "Point":
        return point_distance(a.x, a.y, b.x, b.y)
    ax0, ay0, ax1, ay1 = a.bounds
    bx0, by0, bx1, by1 = b.bounds
    lon0, lat0 = (min(ax0, bx0) + max(ax1, bx1)) / 2, (min(ay0, by0) + max(ay1, by1)) / 2
    east, north = (math.radians(1) * r for r in _radii(lat0))

    def project(xy: Any) -> Any:
        return (xy - (lon0, lat0)) * (east, north)

    pa, pb = nearest_points(shapely.transform(a, project), shapely.transform(b, project))
    return point_distance(pa.x / east + lon0, pa.y / north + lat0, pb.x / east + lon0, pb.y / north + lat0)


# --- Evaluation -----------------------------------------------------------------------------------------------


def _holds(gq: GeoQuery, g: BaseGeometry) -> bool:
    q = gq.geometry  # prepared: the query geometry goes first
    if gq.georel == "near":
        d = distance(g, q)
        if gq.max_distance is not None:
            return d <= gq.max_distance
        assert gq.min_distance is not None  # parse_geoq gives near exactly one of the two
        return d >= gq.min_distance
    predicate = {"within": shapely.contains, "contains": shapely.within, "intersects": shapely.intersects,
                 "equals": shapely.equals, "disjoint": shapely.disjoint, "overlaps": shapely.overlaps}[gq.georel]
    return bool(predicate(q, g))


def geo_matches(gq: GeoQuery, entity: dict[str, Any]) -> bool:
    """Whether any instance of the entity's GeoProperty satisfies the geo-query (an unreadable or
    invalid value does not)."""
    for instance in (entity.get("attrs") or {}).get(gq.geoproperty) or ():
        value = instance.get("value") if isinstance(instance, dict) else None
        try:
            if (g := shape(value)).is_empty:
                continue
            if _holds(gq, g):
                return True
        except (AttributeError, KeyError, TypeError, ValueError, GEOSException):
            continue
    return False


# --- SQL ----------------------------------------------------------------------------------------------------


class _Geography(UserDefinedType[Any]):
    """PostGIS ``geography``, only to cast to (distances in metres on the ellipsoid)."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "geography"


def _near_box(gq: GeoQuery) -> tuple[float, float, float, float]:
    """The query geometry's bounding box grown by maxDistance, a little generously (0.5 %), in degrees."""
    x0, y0, x1, y1 = gq.geometry.bounds
    d = (gq.max_distance or 0.0) * 1.005
    north = _radii(0)[1]  # the meridian radius is smallest at the equator: the widest latitude margin
    dlat = math.degrees(d / north)
    y0, y1 = max(-90.0, y0 - dlat), min(90.0, y1 + dlat)
    edge = max(abs(y0), abs(y1))
    if edge >= 89.9:
        return -180.0, y0, 180.0, y1
    dlon = math.degrees(d / (_A * math.cos(math.radians(edge))))
    return x0 - dlon, y0, x1 + dlon, y1


def geo_to_sql(gq: GeoQuery, *, dialect: str, geom: Any = None, bbox: Any = None) -> ColumnElement[bool]:
    """A WHERE clause for the geo-query.

    On PostgreSQL it is exact, over ``geom``, a PostGIS ``geometry(Geometry,4326)`` column (``ST_DWithin`` on
    ``geography`` for near;maxDistance, ``ST_Distance`` for near;minDistance, ``ST_Within``… otherwise).

    On SQLite, which has no spatial functions, it is only a prefilter over ``bbox`` = (min_lon, min_lat,
    max_lon, max_lat) float columns: it keeps every row that may match (all of them for disjoint and
    near;minDistance), and the caller must refine the candidates with :func:`geo_matches`."""
    if dialect == "postgresql":
        if geom is None:
            raise ValueError("geo_to_sql on PostgreSQL needs the geometry column (geom=)")
        q = func.ST_SetSRID(func.ST_GeomFromGeoJSON(literal(json.dumps(gq.geojson))), 4326)
        if gq.georel == "near":
            there, here = cast(geom, _Geography()), cast(q, _Geography())
            if gq.max_distance is not None:
                within = func.ST_DWithin(there, here, gq.max_distance)
                x0, y0, x1, y1 = _near_box(gq)
                if x0 < -180.0 or x1 > 180.0:  # across the antimeridian: no box in degrees holds it
                    return within
                # the box in degrees first: ``&&`` on the geometry is what its GiST index serves (the
                # geography cast is not), and every geometry within maxDistance meets the grown box
                box = func.ST_MakeEnvelope(x0, y0, x1, y1, 4326)
                return and_(geom.op("&&")(box), within)
            return func.ST_Distance(there, here) >= gq.min_distance
        fn = {"within": func.ST_Within, "contains": func.ST_Contains, "intersects": func.ST_Intersects,
              "equals": func.ST_Equals, "disjoint": func.ST_Disjoint, "overlaps": func.ST_Overlaps}[gq.georel]
        return fn(geom, q)
    if dialect != "sqlite":
        raise ValueError(f"unsupported dialect {dialect!r}: expected 'postgresql' or 'sqlite'")
    if bbox is None:
        raise ValueError("geo_to_sql on SQLite needs the bounding box columns (bbox=)")
    min_lon, min_lat, max_lon, max_lat = bbox
    if gq.georel == "disjoint" or gq.min_distance is not None:
        return true()
    x0, y0, x1, y1 = _near_box(gq) if gq.georel == "near" else gq.geometry.bounds
    if gq.georel == "within":
        return and_(min_lon >= x0, max_lon <= x1, min_lat >= y0, max_lat <= y1)
    if gq.georel == "contains":
        return and_(min_lon <= x0, max_lon >= x1, min_lat <= y0, max_lat >= y1)
    return and_(max_lon >= x0, min_lon <= x1, max_lat >= y0, min_lat <= y1)  # the boxes meet
