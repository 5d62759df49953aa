"""NGSI-LD geo-queries: validation with clear refusals, the Python evaluator against hand-checked answers,
PostGIS on PostgreSQL and the bounding-box prefilter (refined in Python) on SQLite returning the same
features, around a point of Shanghai (121.4 E, 31.2 N)."""

from __future__ import annotations

import json

import pytest
from shapely.geometry import shape
from sqlalchemy import JSON, Column, Float, MetaData, String, Table, func, select, text
from sqlalchemy.types import UserDefinedType

from citybase.twin.geoquery import (
    CORE_GEOPROPERTIES,
    GeoQSyntaxError,
    distance,
    geo_matches,
    geo_to_sql,
    parse_geoq,
    point_distance,
)
from tests.conftest import ENGINES

LOCATION = CORE_GEOPROPERTIES["location"]


def expand(term: str) -> str:
    return term if ":" in term else "https://example.org/" + term


def square(x0, y0, x1, y1):
    return [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]


Q = square(121.39, 31.19, 121.41, 31.21)  # 1.9 km × 2.2 km around A
FEATURES = {
    "A": {"type": "Point", "coordinates": [121.400, 31.200]},
    "B": {"type": "Point", "coordinates": [121.403, 31.200]},  # 286 m east of A
    "C": {"type": "Point", "coordinates": [121.400, 31.2085]},  # 942 m north
    "D": {"type": "Point", "coordinates": [121.420, 31.200]},  # 1.9 km east
    "E": {"type": "Point", "coordinates": [121.450, 31.250]},  # 7.3 km north-east
    "F": {"type": "Point", "coordinates": [121.380, 31.190]},  # 2.2 km south-west
    "L1": {"type": "LineString", "coordinates": [[121.39, 31.195], [121.41, 31.195]]},  # 555 m south
    "L2": {"type": "LineString", "coordinates": [[121.5, 31.3], [121.6, 31.3]]},
    "G1": {"type": "Polygon", "coordinates": square(121.395, 31.195, 121.405, 31.205)},  # around A
    "G2": {"type": "Polygon", "coordinates": square(121.46, 31.26, 121.48, 31.28)},
    "G3": {"type": "Polygon", "coordinates": square(121.40, 31.20, 121.41, 31.21)},  # A is its corner
    # Q again, from another vertex and the other way round: topologically equal
    "G4": {"type": "Polygon", "coordinates": [[[121.41, 31.21], [121.41, 31.19], [121.39, 31.19],
                                               [121.39, 31.21], [121.41, 31.21]]]},
    "M1": {"type": "MultiPoint", "coordinates": [[121.4, 31.2], [121.5, 31.3]]},
    "ML1": {"type": "MultiLineString", "coordinates": [[[121.401, 31.201], [121.402, 31.202]],
                                                       [[121.6, 31.4], [121.7, 31.4]]]},
    "MP1": {"type": "MultiPolygon", "coordinates": [square(121.46, 31.26, 121.48, 31.28),
                                                    square(121.4025, 31.1995, 121.4035, 31.2005)]},  # holds B
}


def feature(fid, geometry):
    return {"id": fid, "type": ["https://example.org/Thing"],
            "attrs": {LOCATION: [{"type": "GeoProperty", "value": geometry}]}}


ENTITIES = [feature(fid, g) for fid, g in FEATURES.items()]

POINT_A = ("Point", [121.4, 31.2])
QUERIES = [  # (georel, geometry, coordinates, hand-checked answer or None)
    ("near;maxDistance==500", *POINT_A, {"A", "B", "G1", "G3", "G4", "M1", "ML1", "MP1"}),
    ("near;maxDistance==1000", *POINT_A, {"A", "B", "C", "G1", "G3", "G4", "L1", "M1", "ML1", "MP1"}),
    ("near;minDistance==2000", *POINT_A, {"E", "F", "G2", "L2"}),
    ("near;maxDistance==300", "LineString", [[121.39, 31.2085], [121.41, 31.2085]], None),
    ("near;maxDistance==8000", *POINT_A, None),
    ("near;maxDistance==1500", "Polygon", square(121.46, 31.26, 121.48, 31.28), None),
    ("within", "Polygon", Q, {"A", "B", "C", "G1", "G3", "G4", "L1"}),
    ("within", "MultiPolygon", [Q, square(121.45, 31.25, 121.49, 31.29)], None),
    ("contains", *POINT_A, {"A", "G1", "G4", "M1"}),
    ("contains", "LineString", [[121.396, 31.196], [121.404, 31.204]], {"G1", "G4"}),
    ("intersects", "LineString", [[121.39, 31.2], [121.41, 31.2]], None),
    ("intersects", "Point", [121.403, 31.2], {"B", "G1", "G3", "G4", "MP1"}),  # B is on G3's edge
    ("equals", "Polygon", Q, {"G4"}),
    ("disjoint", "Polygon", Q, {"D", "E", "F", "G2", "L2"}),
    ("overlaps", "Polygon", square(121.40, 31.19, 121.41, 31.20), {"G1", "MP1"}),  # G3 only touches
    ("overlaps", "MultiPoint", [[121.4, 31.2], [121.9, 31.9]], {"M1"}),
]


def geoq(georel, geometry, coordinates, geoproperty=None):
    return parse_geoq(georel, geometry, coordinates, geoproperty, expand)


def py_ids(gq):
    return {e["id"] for e in ENTITIES if geo_matches(gq, e)}


# --- Validation ----------------------------------------------------------------------------------------------


def test_a_valid_geoquery_is_read_whatever_the_form_of_its_coordinates():
    gq = geoq("near;maxDistance==2000", "Point", "[121.4, 31.2]")
    assert (gq.georel, gq.max_distance, gq.min_distance, gq.geoproperty) == ("near", 2000.0, None, LOCATION)
    assert gq.geojson == {"type": "Point", "coordinates": [121.4, 31.2]}
    assert geoq("near;minDistance==5.5", "Point", [121.4, 31.2]).min_distance == 5.5
    assert geoq("within", "Polygon", json.dumps(Q)).geometry.equals(shape({"type": "Polygon", "coordinates": Q}))
    assert geoq("within", "Polygon", Q, "observationSpace").geoproperty == "https://uri.etsi.org/ngsi-ld/observationSpace"
    assert geoq("within", "Polygon", Q, "footprint").geoproperty == "https://example.org/footprint"


@pytest.mark.parametrize(("args", "message"), [
    (("", "Point", "[1, 2]"), "georel is required"),
    (("nearby", "Point", "[1, 2]"), "unknown georel 'nearby': expected one of near, within, contains"),
    (("near", "Point", "[1, 2]"), "georel 'near' needs exactly one distance"),
    (("near;maxDistance==1;minDistance==2", "Point", "[1, 2]"), "needs exactly one distance"),
    (("near;maxDistance=5", "Point", "[1, 2]"), "expected maxDistance==<metres> or minDistance==<metres>"),
    (("near;maxDistance==-5", "Point", "[1, 2]"), "expected maxDistance==<metres>"),
    (("within;maxDistance==5", "Polygon", json.dumps(Q)), "georel 'within' takes no modifiers"),
    (("within", "", json.dumps(Q)), "geometry is required"),
    (("within", "Circle", "[1, 2]"), "unknown geometry 'Circle'"),
    (("within", "Point", ""), "coordinates are required"),
    (("within", "Point", "[121.4,"), "coordinates are not valid JSON"),
    (("within", "Point", "[121.4]"), "must be a position [longitude, latitude]"),
    (("within", "Point", "[true, 1]"), "must be a position"),
    (("within", "Point", "[200, 31]"), "longitude 200 at coordinates is out of range [-180, 180]"),
    (("within", "MultiPoint", "[[121, 31], [121, 95]]"), "latitude 95 at coordinates[1] is out of range"),
    (("within", "LineString", "[[121, 31]]"), "must be a list of at least 2 positions"),
    (("within", "Polygon", "[[[0, 0], [1, 0], [1, 1], [0, 1]]]"), "is not closed: it starts at [0, 0] and ends at [0, 1]"),
    (("within", "Polygon", "[[[0, 0], [1, 0], [0, 0]]]"), "at least 4 positions"),
    (("within", "MultiPolygon", "[]"), "must be a list of at least 1 polygons"),
])
def test_a_wrong_geoquery_is_refused_with_the_reason(args, message):
    with pytest.raises(GeoQSyntaxError) as e:
        geoq(*args)
    assert message in str(e.value), str(e.value)
    assert isinstance(e.value, ValueError)


# --- Python evaluation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("georel", "geometry", "coordinates", "expected"), [q for q in QUERIES if q[3] is not None])
def test_the_evaluator_gives_the_hand_checked_answers(georel, geometry, coordinates, expected):
    assert py_ids(geoq(georel, geometry, coordinates)) == expected


def test_any_instance_of_the_chosen_geoproperty_counts_and_unreadable_values_do_not():
    near = geoq("near;maxDistance==500", *POINT_A)
    two = {"id": "Z", "attrs": {LOCATION: [{"type": "GeoProperty", "value": FEATURES["E"], "datasetId": "urn:a"},
                                           {"type": "GeoProperty", "value": FEATURES["B"]}]}}
    assert geo_matches(near, two)
    broken = {"id": "Y", "attrs": {LOCATION: [{"type": "GeoProperty", "value": "here"},
                                              {"type": "GeoProperty", "value": {"type": "Point"}},
                                              {"type": "GeoProperty", "value": {"type": "Point", "coordinates": []}}]}}
    assert not geo_matches(near, broken) and not geo_matches(near, {"id": "X", "attrs": {}})
    space = "https://uri.etsi.org/ngsi-ld/observationSpace"
    observed = {"id": "O", "attrs": {space: [{"type": "GeoProperty", "value": FEATURES["A"]}]}}
    assert not geo_matches(near, observed)
    assert geo_matches(geoq("near;maxDistance==500", *POINT_A, "observationSpace"), observed)


def test_distances_are_metres_on_the_ellipsoid():
    assert point_distance(121.4, 31.2, 121.4, 32.2) == pytest.approx(110_874, rel=1e-3)  # a degree of latitude
    assert point_distance(121.4, 31.2, 122.4, 31.2) == pytest.approx(95_290, rel=2e-3)  # one of longitude here
    assert point_distance(179.9, 0, -179.9, 0) == pytest.approx(22_264, rel=1e-3)  # across the antimeridian
    lines = shape(FEATURES["L1"]), shape(FEATURES["A"])
    assert distance(*lines) == pytest.approx(0.005 * 110_860, rel=2e-3)
    assert distance(shape(FEATURES["G1"]), shape(FEATURES["A"])) == 0


# --- SQL on both engines -----------------------------------------------------------------------------------------


class Geometry(UserDefinedType):
    """A PostGIS column written from GeoJSON."""

    cache_ok = True

    def get_col_spec(self, **kw):
        return "geometry(Geometry,4326)"

    def bind_expression(self, bindvalue):
        return func.ST_SetSRID(func.ST_GeomFromGeoJSON(bindvalue), 4326)


@pytest.fixture
def features(empty_db):
    """The features in a fresh table: a PostGIS geometry on PostgreSQL, a bounding box on both."""
    pg = empty_db.kind == "postgresql"
    if pg:
        with empty_db.engine.begin() as c:
            c.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    md = MetaData()
    cols = [Column("id", String, primary_key=True), Column("attrs", JSON),
            *(Column(n, Float) for n in ("min_lon", "min_lat", "max_lon", "max_lat"))]
    table = Table("twin_features", md, *cols, *([Column("geom", Geometry())] if pg else []))
    md.create_all(empty_db.engine)
    rows = []
    for e in ENTITIES:
        g = e["attrs"][LOCATION][0]["value"]
        bounds = dict(zip(("min_lon", "min_lat", "max_lon", "max_lat"), shape(g).bounds, strict=True))
        rows.append({"id": e["id"], "attrs": e["attrs"], **bounds, **({"geom": json.dumps(g)} if pg else {})})
    with empty_db.engine.begin() as c:
        c.execute(table.insert(), rows)
    return empty_db, table


@pytest.mark.parametrize("empty_db", ENGINES, indirect=True)
def test_the_database_returns_what_the_evaluator_says(features):
    db, table = features
    bbox = (table.c.min_lon, table.c.min_lat, table.c.max_lon, table.c.max_lat)
    by_id = {e["id"]: e for e in ENTITIES}
    narrowed = 0
    for georel, geometry, coordinates, expected in QUERIES:
        gq = geoq(georel, geometry, coordinates)
        want = py_ids(gq)
        if expected is not None:
            assert want == expected, georel
        if db.kind == "postgresql":
            where = geo_to_sql(gq, dialect="postgresql", geom=table.c.geom)
            with db.engine.connect() as c:
                got = set(c.execute(select(table.c.id).where(where)).scalars())
        else:
            where = geo_to_sql(gq, dialect="sqlite", bbox=bbox)
            with db.engine.connect() as c:
                candidates = set(c.execute(select(table.c.id).where(where)).scalars())
            assert candidates >= want, (georel, geometry, want - candidates)  # a prefilter loses nothing
            narrowed += len(candidates) < len(ENTITIES)
            got = {i for i in candidates if geo_matches(gq, by_id[i])}
        assert got == want, (georel, geometry, coordinates, sorted(got ^ want))
    assert db.kind == "postgresql" or narrowed >= 10  # and the box does narrow most queries down


@pytest.mark.parametrize("empty_db", ["postgresql"], indirect=True)
def test_point_distances_agree_with_postgis(features):
    db, _ = features
    origin = (121.4, 31.2)
    with db.engine.connect() as c:
        for dx, dy in [(0.003, 0), (0, 0.0085), (0.02, 0.01), (-0.05, 0.05), (0.3, -0.2), (0.4, 0.3)]:
            there = (origin[0] + dx, origin[1] + dy)
            postgis = c.execute(text("SELECT ST_Distance(ST_MakePoint(:a, :b)::geography, ST_MakePoint(:c, :d)::geography)"),
                                {"a": origin[0], "b": origin[1], "c": there[0], "d": there[1]}).scalar()
            assert point_distance(*origin, *there) == pytest.approx(postgis, rel=1e-5)


def test_geo_to_sql_needs_its_columns_and_a_known_dialect():
    gq = geoq("within", "Polygon", Q)
    with pytest.raises(ValueError, match="needs the geometry column"):
        geo_to_sql(gq, dialect="postgresql")
    with pytest.raises(ValueError, match="needs the bounding box columns"):
        geo_to_sql(gq, dialect="sqlite")
    with pytest.raises(ValueError, match="unsupported dialect"):
        geo_to_sql(gq, dialect="oracle", bbox=(1, 2, 3, 4))


def test_a_self_intersecting_query_polygon_is_repaired_not_refused():
    """A bow-tie ring (hand-drawn query areas often are one) is read as the valid area it encloses, as PostGIS
    would, so ``within`` still finds what lies inside either lobe."""
    gq = parse_geoq("within", "Polygon", "[[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]]", None, lambda t: t)
    assert gq.geometry.is_valid and gq.geojson["type"] in ("MultiPolygon", "Polygon", "GeometryCollection")
    inside = {"id": "urn:x:1", "type": ["T"], "attrs": {"https://uri.etsi.org/ngsi-ld/location": [
        {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [0.2, 1.0]}}]}}
    assert geo_matches(gq, inside)
