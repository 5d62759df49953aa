"""The spatial base: levels tile their parents, lookups agree across engines, addresses match."""

import json
import random

import numpy as np
import pytest
from shapely.geometry import shape
from shapely.ops import unary_union
from sqlalchemy.orm import Session

from citybase.geo import service
from citybase.geo.address import normalize
from citybase.geo.models import Area, Building


def _areas(city, level):
    with Session(city.engine) as s:
        return list(s.query(Area).filter(Area.level == level).order_by(Area.id))


@pytest.mark.parametrize("child_level, parent_level", [("street", "district"), ("community", "street"), ("grid", "community")])
def test_each_level_tiles_its_parent_without_gaps_or_overlaps(city, child_level, parent_level):
    parents = {a.id: shape(json.loads(a.geometry)) for a in _areas(city, parent_level)}
    children: dict[int, list] = {}
    for a in _areas(city, child_level):
        children.setdefault(a.parent_id, []).append(shape(json.loads(a.geometry)))
    assert set(children) == set(parents)
    for pid, kids in children.items():
        parent = parents[pid]
        union = unary_union(kids)
        # Coordinates are stored to 1e-7 degrees (about 1 cm); rounding slivers stay far below 1e-5 of the area.
        assert union.symmetric_difference(parent).area < parent.area * 1e-5  # no gap
        assert abs(sum(k.area for k in kids) - parent.area) < parent.area * 1e-5  # no overlap


def test_district_is_at_district_scale_and_codes_follow_gb2260(city):
    (district,) = _areas(city, "district")
    assert district.code == "310104"
    assert 40 < district.area_km2 < 70
    for s in _areas(city, "street"):
        assert s.code.startswith("310104") and len(s.code) == 9
    for g in _areas(city, "grid"):
        assert len(g.code) == 15


def test_point_lookup_in_process_agrees_with_the_engine(city):
    rnd = random.Random(3)
    (district,) = _areas(city, "district")
    with Session(city.engine) as s:
        checked = 0
        for _ in range(150):
            lon = rnd.uniform(district.min_lon, district.max_lon)
            lat = rnd.uniform(district.min_lat, district.max_lat)
            in_db = service.locate_in_database(session=s, lon=lon, lat=lat)
            if "grid" not in in_db:
                with pytest.raises(Exception, match="outside every grid"):
                    service.locate(session=s, lon=lon, lat=lat)
                continue
            loc = service.locate(session=s, lon=lon, lat=lat)
            assert loc.grid.id == in_db["grid"].id
            assert loc.community.id == in_db["community"].id
            assert loc.street.id == in_db["street"].id
            checked += 1
    assert checked > 50


def test_vectorised_lookup_matches_single_lookup(city):
    with Session(city.engine) as s:
        idx = service.grid_index(session=s)
        buildings = s.query(Building).limit(300).all()
    lons = np.array([b.lon for b in buildings])
    lats = np.array([b.lat for b in buildings])
    many = idx.locate_many(lons, lats)
    assert list(many) == [idx.locate(b.lon, b.lat) for b in buildings]
    assert list(many) == [b.grid_id for b in buildings]  # every building lies in its own grid


def test_lookup_api_returns_the_area_chain(client):
    r = client.get("/api/v1/areas", params={"level": "grid"})
    grid = r.json()[0]
    r = client.get("/api/v1/locate", params={"lon": grid["center_lon"], "lat": grid["center_lat"]})
    assert r.status_code == 200
    body = r.json()
    assert body["grid"]["code"] == grid["code"]
    assert body["community"]["code"] == grid["code"][:12]
    assert body["street"]["code"] == grid["code"][:9]


def test_point_outside_the_city_is_a_clear_404(client):
    r = client.get("/api/v1/locate", params={"lon": 116.4, "lat": 39.9})
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert "outside every grid" in r.json()["detail"]


def test_geojson_of_grids_names_their_parents(client):
    fc = client.get("/api/v1/areas/geojson", params={"level": "grid"}).json()
    assert fc["type"] == "FeatureCollection"
    assert all(f["properties"]["parent_code"] == f["properties"]["code"][:12] for f in fc["features"])
    assert fc["features"][0]["geometry"]["type"] == "MultiPolygon"


def test_area_tree_nests_district_streets_communities(client):
    tree = client.get("/api/v1/areas/tree").json()
    assert len(tree) == 1 and tree[0]["level"] == "district"
    street = tree[0]["children"][0]
    assert street["level"] == "street" and street["children"][0]["level"] == "community"


def _some_buildings(city, n=20):
    with Session(city.engine) as s:
        return s.query(Building).order_by(Building.id).limit(n).all()


def test_exact_address_matches_the_building(city):
    with Session(city.engine) as s:
        for b in _some_buildings(city):
            (m,) = service.match_address(session=s, text=b.address, limit=3)
            assert (m.building_id, m.how, m.score) == (b.id, "exact", 100.0)


def test_address_variants_still_match_exactly(city):
    b = next(b for b in _some_buildings(city, 200) if "弄" in b.address)
    key = normalize(b.address, ["徐汇区"])
    full_width = key.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    with Session(city.engine) as s:
        for variant in (key, f"上海 徐汇区 {key}", full_width):
            assert service.match_address(session=s, text=variant)[0].building_id == b.id


def test_fuzzy_address_with_a_typo_finds_the_building_first(city):
    b = next(b for b in _some_buildings(city, 200) if "弄" in b.address)
    key = normalize(b.address, ["徐汇区"])
    typo = key.replace("弄", "弄 ", 1).replace("号", "號")  # spacing and a traditional character
    with Session(city.engine) as s:
        matches = service.match_address(session=s, text=typo)
    assert matches and matches[0].building_id == b.id and matches[0].how == "fuzzy"


def test_address_search_api(client, city):
    b = _some_buildings(city, 1)[0]
    r = client.get("/api/v1/addresses/match", params={"q": b.address}, headers=city.auth("dispatcher"))
    assert r.status_code == 200 and r.json()[0]["building_id"] == b.id
    r = client.get("/api/v1/addresses/match", params={"q": ""}, headers=city.auth("dispatcher"))
    assert r.status_code == 422 and "query parameter 'q'" in r.json()["detail"]


def test_buildings_filter_by_grid_and_page(client, city):
    b = _some_buildings(city, 1)[0]
    with Session(city.engine) as s:
        grid = s.get(Area, b.grid_id)
        expected = s.query(Building).filter(Building.grid_id == grid.id).count()
    r = client.get("/api/v1/buildings", params={"area": grid.code, "page_size": 2}, headers=city.auth("analyst"))
    body = r.json()
    assert body["total"] == expected and len(body["items"]) == min(2, expected)
    assert all(i["grid_code"] == grid.code for i in body["items"])
