"""Generate a demo city deterministically from a seed.

Geometry is built in a local metric plane around the district centre and converted to WGS-84:
streets are a Voronoi partition of the district, communities of each street, grids of each
community, so every level tiles its parent without gaps or overlaps. Buildings sit inside their
grid on the community's roads; persons live in residential buildings; firms sit mostly in
commercial buildings with residents as legal representatives. Every identifier carries a valid
check character. Rows are bulk-loaded (COPY on PostgreSQL)."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import shapely
from shapely.geometry import MultiPoint, MultiPolygon, Polygon, mapping
from sqlalchemy import Engine, text

from citybase.core.ids import USCC_CHARS, org_code_check_char, uscc_check_char
from citybase.demo import vocab
from citybase.geo.address import normalize
from citybase.storage.db import bulk_insert

M_PER_DEG_LAT = 111_000.0
M_PER_DEG_LON = 111_000.0 * math.cos(math.radians(vocab.CENTER[1]))
CREATED = datetime(2026, 1, 1, tzinfo=UTC)

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class Size:
    streets: int
    communities: int
    grids: int
    buildings: int
    persons: int
    entities: int


SIZES = {
    "small": Size(streets=3, communities=12, grids=40, buildings=1_200, persons=6_000, entities=600),
    "district": Size(streets=13, communities=306, grids=1_224, buildings=105_000, persons=1_100_000, entities=62_000),
}


@dataclass
class Report:
    size: str
    seed: int
    counts: dict[str, int] = field(default_factory=dict)


def _noop(stage: str, done: int, total: int) -> None:
    pass


# ---------- geometry ----------

def _district_shape(rng: np.random.Generator) -> Polygon:
    """An irregular, N–S elongated district of about 55 km² in local metres."""
    theta = np.linspace(0, 2 * np.pi, 96, endpoint=False)
    p1, p2, p3 = rng.uniform(0, 2 * np.pi, 3)
    r = 4150 * (1 + 0.12 * np.sin(2 * theta + p1) + 0.07 * np.sin(3 * theta + p2) + 0.04 * np.sin(5 * theta + p3))
    return Polygon(np.column_stack([0.72 * r * np.cos(theta), 1.38 * r * np.sin(theta)])).buffer(0)


def _random_points(poly: Polygon, n: int, rng: np.random.Generator) -> np.ndarray:
    minx, miny, maxx, maxy = poly.bounds
    shapely.prepare(poly)
    out: list[np.ndarray] = []
    have = 0
    while have < n:
        pts = rng.uniform([minx, miny], [maxx, maxy], size=(max(64, 2 * (n - have)), 2))
        pts = pts[shapely.contains_xy(poly, pts[:, 0], pts[:, 1])]
        out.append(pts)
        have += len(pts)
    return np.concatenate(out)[:n]


def _polygonal(g: shapely.Geometry) -> MultiPolygon:
    parts = [p for p in shapely.get_parts(g) if isinstance(p, Polygon) and not p.is_empty]
    return MultiPolygon(parts)


def _partition(parent: Polygon | MultiPolygon, n: int, rng: np.random.Generator, relax: int = 2) -> list[MultiPolygon]:
    """Split a polygon into n cells (Voronoi of relaxed random seeds, clipped to the parent)."""
    if n <= 1:
        return [_polygonal(parent)]
    seeds = _random_points(parent, n, rng)
    env = parent.envelope.buffer(2000)
    cells: list[MultiPolygon] = []
    for it in range(relax + 1):
        vor = shapely.voronoi_polygons(MultiPoint(seeds), extend_to=env, ordered=True)
        cells = [_polygonal(shapely.intersection(c, parent)) for c in shapely.get_parts(vor)]
        if it < relax:
            seeds = np.array([[c.centroid.x, c.centroid.y] if not c.is_empty else s for c, s in zip(cells, seeds, strict=True)])
    return [c for c in cells if not c.is_empty]


def _to_lonlat(g: shapely.Geometry) -> shapely.Geometry:
    cx, cy = vocab.CENTER

    def f(c: np.ndarray) -> np.ndarray:
        return np.round(np.column_stack([cx + c[:, 0] / M_PER_DEG_LON, cy + c[:, 1] / M_PER_DEG_LAT]), 7)

    return shapely.transform(g, f)


def _split_counts(total: int, weights: np.ndarray, minimum: int = 1) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    raw = np.maximum(minimum, np.floor(total * w / w.sum())).astype(int)
    while raw.sum() < total:
        raw[np.argmax(w * total / w.sum() - raw)] += 1
    while raw.sum() > total:
        raw[np.argmax(raw)] -= 1
    return raw


# ---------- identifiers ----------

def _uscc(rng: random.Random, authority: str, kind: str, region: str) -> str:
    body = "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRTUWXY") for _ in range(8))
    first17 = authority + kind + region + body + org_code_check_char(body)
    assert all(c in USCC_CHARS for c in first17)
    return first17 + uscc_check_char(first17)


# ---------- the generator ----------

class CityGenerator:
    def __init__(self, engine: Engine, size: str = "small", seed: int = 2026, progress: Progress | None = None) -> None:
        if size not in SIZES:
            raise ValueError(f"unknown size {size!r}: use {' or '.join(SIZES)}")
        self.engine, self.size_name, self.size, self.seed = engine, size, SIZES[size], seed
        self.np = np.random.default_rng(seed)
        self.rnd = random.Random(seed)
        self.progress = progress or _noop
        self.report = Report(size, seed)

    def run(self) -> Report:
        self._areas()
        self._departments()
        self._buildings()
        self._persons()
        self._entities()
        self._operations()
        self._licences()
        self._finish()
        return self.report

    # --- areas ---
    def _areas(self) -> None:
        s = self.size
        district = _district_shape(self.np)
        streets = _partition(district, s.streets, self.np, relax=3)
        st_w = np.array([g.area for g in streets])
        comm_counts = _split_counts(s.communities, st_w)
        rows: list[tuple] = []
        self.grids: list[dict] = []
        self.communities: list[dict] = []
        self.streets: list[dict] = []
        next_id = 1
        used_names: set[str] = set()

        def add(code: str, name: str, level: str, parent: int | None, geom_m: shapely.Geometry) -> int:
            nonlocal next_id
            g = _to_lonlat(geom_m)
            minx, miny, maxx, maxy = g.bounds
            c = geom_m.representative_point()
            clon, clat = vocab.CENTER[0] + c.x / M_PER_DEG_LON, vocab.CENTER[1] + c.y / M_PER_DEG_LAT
            rows.append((next_id, code, name, level, parent, json.dumps(mapping(g), separators=(",", ":")),
                         minx, miny, maxx, maxy, round(clon, 7), round(clat, 7), geom_m.area / 1e6))
            next_id += 1
            return next_id - 1

        total = 1 + s.streets + s.communities + s.grids
        district_id = add(vocab.DISTRICT[0], vocab.DISTRICT[1], "district", None, _polygonal(district))
        street_names = vocab.STREETS[: s.streets] if s.streets <= len(vocab.STREETS) else vocab.STREETS
        grid_total_w = []
        comm_geoms: list[tuple[int, MultiPolygon]] = []
        for i, sg in enumerate(streets):
            suffix, sname = street_names[i % len(street_names)]
            scode = vocab.DISTRICT[0] + suffix
            sid = add(scode, sname, "street", district_id, sg)
            roads = self._roads(s.buildings // max(1, s.streets) // 700 + 4)
            self.streets.append({"id": sid, "code": scode, "name": sname, "roads": roads})
            for j, cg in enumerate(_partition(sg, int(comm_counts[i]), self.np)):
                cname = self._unique_name(used_names, "居民区")
                ccode = scode + f"{j + 1:03d}"
                cid = add(ccode, cname, "community", sid, cg)
                self.communities.append({"id": cid, "code": ccode, "name": cname, "street": sid,
                                         "roads": self.rnd.sample(roads, k=min(3, len(roads)))})
                comm_geoms.append((cid, cg))
                grid_total_w.append(cg.area)
            self.progress("areas", len(rows), total)
        grid_counts = _split_counts(s.grids, np.array(grid_total_w))
        by_comm = {c["id"]: c for c in self.communities}
        for (cid, cg), ng in zip(comm_geoms, grid_counts, strict=True):
            comm = by_comm[cid]
            for k, gg in enumerate(_partition(cg, int(ng), self.np, relax=1)):
                gcode = comm["code"] + f"{k + 1:03d}"
                gname = f"{comm['name'].removesuffix('居民区')}第{k + 1}网格"
                gid = add(gcode, gname, "grid", cid, gg)
                self.grids.append({"id": gid, "code": gcode, "community": cid, "street": comm["street"],
                                   "geom_m": gg, "area": gg.area})
            self.progress("areas", len(rows), total)
        bulk_insert(self.engine, "areas", ["id", "code", "name", "level", "parent_id", "geometry", "min_lon", "min_lat",
                                           "max_lon", "max_lat", "center_lon", "center_lat", "area_km2"], rows)
        self.district_id = district_id
        self.report.counts.update(district=1, streets=len(self.streets), communities=len(self.communities),
                                  grids=len(self.grids))

    def _unique_name(self, used: set[str], suffix: str) -> str:
        for _ in range(1000):
            name = "".join(self.rnd.sample(vocab.PLACE_CHARS, 2)) + suffix
            if name not in used:
                used.add(name)
                return name
        raise RuntimeError("ran out of names")

    def _roads(self, n: int) -> list[str]:
        if not hasattr(self, "_used_roads"):
            self._used_roads: set[str] = set()
        out: list[str] = []
        while len(out) < n:
            name = self.rnd.choice(vocab.ROAD_STEMS) + self.rnd.choice(vocab.ROAD_SUFFIXES)
            if name not in self._used_roads:
                self._used_roads.add(name)
                out.append(name)
        return out

    # --- departments ---
    def _departments(self) -> None:
        d_code, d_name = vocab.DISTRICT
        rows = []
        i = 0
        for i, (name, short, kind, duties) in enumerate(vocab.DEPARTMENTS, start=1):
            full = f"{d_name}{name}" if kind != "bureau" or not name.startswith(("公安", "消防")) else f"{d_name}{name}"
            rows.append((i, _uscc(self.rnd, "1", "1", d_code), full, short, kind, None,
                         json.dumps(duties, ensure_ascii=False), f"021-6{self.rnd.randrange(4000000, 9999999)}"))
        for st in self.streets:
            i += 1
            rows.append((i, _uscc(self.rnd, "1", "1", d_code), f"{d_name}{st['name']}办事处", st["name"], "street_office",
                         st["id"], json.dumps(vocab.STREET_DUTIES, ensure_ascii=False),
                         f"021-6{self.rnd.randrange(4000000, 9999999)}"))
        bulk_insert(self.engine, "departments", ["id", "code", "name", "short_name", "kind", "area_id", "duties", "phone"], rows)
        self.report.counts["departments"] = len(rows)
        self.department_ids = {r[3]: r[0] for r in rows}

    # --- buildings ---
    def _buildings(self) -> None:
        s = self.size
        counts = _split_counts(s.buildings, np.array([g["area"] for g in self.grids]))
        comm_roads = {c["id"]: c["roads"] for c in self.communities}
        road_next: dict[str, int] = {}
        prefix = vocab.CITY + vocab.DISTRICT[1]
        self.residential: list[tuple[int, str, int]] = []  # (id, address, capacity)
        self.commercial: list[tuple[int, str]] = []
        bid = 0
        uses = np.array(["residential", "commercial", "public", "industrial"])

        def number(road: str) -> int:
            n = road_next.get(road, self.rnd.randrange(1, 30, 2))
            road_next[road] = n + self.rnd.choice((2, 2, 4, 6, 8, 10))
            return n

        def rows() -> Iterator[tuple]:
            nonlocal bid
            done = 0
            for g, n in zip(self.grids, counts, strict=True):
                pts = _random_points(g["geom_m"], int(n), self.np)
                lon = np.round(vocab.CENTER[0] + pts[:, 0] / M_PER_DEG_LON, 7)
                lat = np.round(vocab.CENTER[1] + pts[:, 1] / M_PER_DEG_LAT, 7)
                kinds = uses[self.np.choice(4, size=len(pts), p=[0.8, 0.12, 0.04, 0.04])]
                roads = comm_roads[g["community"]]
                lane_road, lane_no, in_lane, lane_left = "", 0, 0, 0
                for k in range(len(pts)):
                    bid += 1
                    use = str(kinds[k])
                    if use == "residential":
                        if lane_left == 0:
                            lane_road = self.rnd.choice(roads)
                            lane_no = number(lane_road)
                            in_lane, lane_left = 0, self.rnd.randint(6, 30)
                        in_lane += 1
                        lane_left -= 1
                        key = f"{lane_road}{lane_no}弄{in_lane}号"
                        road = lane_road
                        floors = self.rnd.choice((6, 6, 6, 7, 11, 14, 18, 24, 28, 33))
                    else:
                        road = self.rnd.choice(roads)
                        key = f"{road}{number(road)}号"
                        floors = self.rnd.randint(2, 40) if use == "commercial" else self.rnd.randint(2, 8)
                    address = prefix + key
                    if use == "residential":
                        self.residential.append((bid, address, floors * self.rnd.randint(2, 6)))
                    elif use == "commercial" or use == "industrial":
                        self.commercial.append((bid, address))
                    yield (bid, f"{g['code']}-{k + 1:04d}", address, normalize(key), road, float(lon[k]), float(lat[k]),
                           floors, use, g["id"], g["community"], g["street"])
                done += int(n)
                self.progress("buildings", done, s.buildings)

        n = bulk_insert(self.engine, "buildings", ["id", "code", "address", "address_key", "road", "lon", "lat", "floors",
                                                   "use", "grid_id", "community_id", "street_id"], rows())
        self.report.counts["buildings"] = n

    # --- persons ---
    def _persons(self) -> None:
        s, g = self.size, self.np
        n = s.persons
        # Where each person lives: residential buildings weighted by capacity.
        cap = np.array([c for _, _, c in self.residential], dtype=float)
        home = g.choice(len(self.residential), size=n, p=cap / cap.sum())
        home.sort(kind="stable")  # households are neighbours in one building
        male = g.random(n) < 0.5
        # Shanghai's older age profile: ages 0–99.
        age_w = np.concatenate([np.full(18, 0.8), np.full(42, 1.25), np.full(20, 1.1), np.full(20, 0.35)])
        age = g.choice(100, size=n, p=age_w / age_w.sum())
        today = date(2026, 11, 1)
        birth_ord = today.toordinal() - (age * 365.25).astype(np.int64) - g.integers(0, 365, size=n)
        regions = [vocab.DISTRICT[0]] + vocab.SHANGHAI_REGIONS + vocab.OTHER_REGIONS
        rw = np.array([0.62] + [0.16 / len(vocab.SHANGHAI_REGIONS)] * len(vocab.SHANGHAI_REGIONS)
                      + [0.22 / len(vocab.OTHER_REGIONS)] * len(vocab.OTHER_REGIONS))
        region = g.choice(len(regions), size=n, p=rw / rw.sum())
        # Unique sequence codes: rank within (region, birth date, sex), odd for men (GB 11643).
        key = (region.astype(np.int64) * 1_000_000 + birth_ord) * 2 + male
        order = np.argsort(key, kind="stable")
        sk = key[order]
        starts = np.r_[0, np.flatnonzero(np.diff(sk)) + 1]
        rank_sorted = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
        rank = np.empty(n, dtype=np.int64)
        rank[order] = rank_sorted
        if rank.max() >= 500:
            raise RuntimeError("too many people share a birth date and region for GB 11643 sequence codes")
        seq = rank * 2 + male
        surnames = vocab.SURNAMES
        sw = 1 / np.arange(1, len(surnames) + 1) ** 0.9
        sur = g.choice(len(surnames), size=n, p=sw / sw.sum())
        two = g.random(n) < 0.7
        g1 = g.integers(0, 1 << 30, size=n)
        g2 = g.integers(0, 1 << 30, size=n)
        has_phone = (g.random(n) < 0.96) & (age >= 10)
        phone_pre = np.array([130, 131, 132, 133, 135, 136, 137, 138, 139, 150, 151, 152, 155, 156, 158, 159,
                              166, 177, 180, 181, 186, 187, 188, 189, 198, 199])[g.integers(0, 26, size=n)]
        phone_rest = g.integers(0, 100_000_000, size=n)
        room = g.integers(1, 30, size=n) * 100 + g.integers(1, 5, size=n)
        hh_size = g.integers(1, 5, size=n)
        weights = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
        self.adults: list[tuple[str, str]] = []
        chunk = 100_000
        hh_no, hh_left, last_home = 0, 0, -1
        rooms: dict[int, int] = {}

        def rows() -> Iterator[tuple]:
            nonlocal hh_no, hh_left, last_home
            for lo in range(0, n, chunk):
                hi = min(n, lo + chunk)
                births = [date.fromordinal(int(o)) for o in birth_ord[lo:hi]]
                region_codes = [regions[r] for r in region[lo:hi]]
                first17 = [f"{rc}{b.year:04d}{b.month:02d}{b.day:02d}{sq:03d}"
                           for rc, b, sq in zip(region_codes, births, seq[lo:hi], strict=True)]
                digits = np.frombuffer("".join(first17).encode(), dtype=np.uint8).reshape(-1, 17) - 48
                checks = "10X98765432"
                check_idx = (digits.astype(np.int64) @ weights) % 11
                for i in range(hi - lo):
                    j = lo + i
                    h = int(home[j])
                    if h != last_home or hh_left == 0:
                        hh_no += 1
                        hh_left = int(hh_size[j])
                        rooms[h] = int(room[j])
                        last_home = h
                    hh_left -= 1
                    idn = first17[i] + checks[check_idx[i]]
                    given_pool = vocab.GIVEN_M if male[j] else vocab.GIVEN_F
                    name = surnames[sur[j]] + given_pool[g1[j] % len(given_pool)]
                    if two[j]:
                        name += vocab.GIVEN_ANY[g2[j] % len(vocab.GIVEN_ANY)] if g2[j] % 3 == 0 else given_pool[g2[j] % len(given_pool)]
                    bid, address, _ = self.residential[h]
                    phone = f"{phone_pre[j]}{phone_rest[j]:08d}" if has_phone[j] else None
                    if age[j] >= 25 and len(self.adults) < 400_000 and j % 3 == 0:
                        self.adults.append((idn, name))
                    yield (j + 1, idn, name, "M" if male[j] else "F", births[i], phone, f"H{hh_no:09d}", bid,
                           f"{address}{rooms[h]}室", CREATED)
                self.progress("persons", hi, n)

        count = bulk_insert(self.engine, "persons", ["id", "id_number", "name", "sex", "birth_date", "phone",
                                                     "household_no", "building_id", "registered_address",
                                                     "created_at"], rows())
        self.report.counts["persons"] = count

    # --- legal entities ---
    def _entities(self) -> None:
        s, r = self.size, self.rnd
        inds = vocab.INDUSTRIES
        iw = [w for _, _, w in inds]
        d_code, d_name = vocab.DISTRICT
        used: set[str] = set()
        names: set[str] = set()

        def rows() -> Iterator[tuple]:
            for i in range(1, s.entities + 1):
                roll = r.random()
                code, industry, _ = r.choices(inds, weights=iw)[0]
                trade = "".join(r.sample(vocab.PLACE_CHARS, 2))
                if roll < 0.78:
                    etype, auth, kind = "enterprise", "9", "1"
                    name = f"上海{trade}{r.choice(vocab.FIRM_WORDS[code])}有限公司"
                elif roll < 0.96:
                    etype, auth, kind = "individual", "9", "2"
                    code, industry = ("H", "住宿和餐饮业") if r.random() < 0.4 else ("F", "批发和零售业")
                    name = f"{d_name}{trade}{r.choice(vocab.SHOP_WORDS)}"
                elif roll < 0.98:
                    etype, auth, kind = "cooperative", "9", "3"
                    name = f"上海{trade}农产品专业合作社"
                    code, industry = "A", "农、林、牧、渔业"
                else:
                    etype, auth, kind = "social_org", "5", "1"
                    name = f"{d_name}{trade}{r.choice(vocab.ORG_WORDS)}"
                    code, industry = "S", "公共管理、社会保障和社会组织"
                k = 1
                base = name
                while name in names:
                    k += 1
                    name = base.replace(trade, f"{trade}{k}", 1)
                names.add(name)
                uscc = _uscc(r, auth, kind, d_code)
                while uscc in used:
                    uscc = _uscc(r, auth, kind, d_code)
                used.add(uscc)
                if r.random() < 0.8 and self.commercial:
                    bid, address = r.choice(self.commercial)
                else:
                    bid, address, _ = r.choice(self.residential)
                rep_id, rep_name = r.choice(self.adults)
                est = date(2026, 10, 31) - timedelta(days=r.randint(30, 30 * 365))
                capital = round(r.choice((3, 10, 50, 100, 200, 500, 1000, 5000)) * r.uniform(0.5, 2), 2)
                status = "active" if r.random() < 0.93 else r.choice(("revoked", "cancelled"))
                yield (i, uscc, name, etype, code, industry, bid, address, rep_name, rep_id,
                       capital if etype == "enterprise" else round(capital / 20, 2), est, status, CREATED)
                if i % 5000 == 0:
                    self.progress("legal entities", i, s.entities)
            self.progress("legal entities", s.entities, s.entities)

        count = bulk_insert(self.engine, "legal_entities", ["id", "uscc", "name", "entity_type", "industry_code", "industry",
                                                            "building_id", "address", "legal_rep_name",
                                                            "legal_rep_id_number", "registered_capital",
                                                            "established_on", "status", "created_at"], rows())
        self.report.counts["legal_entities"] = count

    def _operations(self) -> None:
        """The incident loop's category tree and responsibility rules (权责清单)."""
        from sqlalchemy.orm import Session

        from citybase.ops.catalogue.service import seed_catalogue

        with Session(self.engine) as session, session.begin():
            self.report.counts["incident_categories"] = seed_catalogue(session=session)

    def _licences(self) -> None:
        """The licence catalogue, and licences issued (signed) to the persons and firms."""
        from citybase.licences.demo import seed_demo

        self.report.counts.update(seed_demo(self.engine, seed=self.seed, progress=self.progress))

    def _finish(self) -> None:
        self.progress("indexes", 0, 1)
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                conn.execute(text(
                    "UPDATE areas SET geom = ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON(geometry), 4326)) WHERE geom IS NULL"))
                conn.execute(text("UPDATE buildings SET geom = ST_SetSRID(ST_MakePoint(lon, lat), 4326) WHERE geom IS NULL"))
                for t in ("areas", "buildings", "departments", "persons", "legal_entities", "ops_categories",
                          "ops_routing_rules"):
                    conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), "
                                      f"(SELECT COALESCE(MAX(id), 1) FROM {t}))"))
                conn.execute(text("ANALYZE"))
            else:
                conn.execute(text("ANALYZE"))
        self.progress("indexes", 1, 1)


def generate(engine: Engine, size: str = "small", seed: int = 2026, progress: Progress | None = None) -> Report:
    """Fill an empty, migrated database with the demo city of ``size`` (small or district)."""
    return CityGenerator(engine, size, seed, progress).run()
