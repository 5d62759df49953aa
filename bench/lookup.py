"""Point → grid lookups per second and address matches per second on the district city.

usage: python bench/lookup.py [--url DATABASE_URL] [--seconds 3]
Compares, in one run: the in-process raster index (single calls and vectorised) against the
engine's own spatial query (PostGIS ST_Intersects, or SQLite bounding box + shapely)."""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from citybase.demo.generator import generate
from citybase.geo import service
from citybase.geo.address import normalize
from citybase.geo.models import Area, Building
from citybase.storage.db import make_engine
from citybase.storage.migrate import upgrade

OUT = Path(__file__).resolve().parent / "out"


def rate(fn, items, seconds: float) -> float:
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for it in items:
            fn(it)
        n += len(items)
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default=None)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    url = args.url or f"sqlite:///{OUT / 'district.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    with Session(engine) as s:
        if not s.query(Area).first():
            print("generating the district city (once) …")
            generate(engine, size="district")
    rnd = random.Random(1)
    with Session(engine) as s:
        district = s.query(Area).filter(Area.level == "district").one()
        grids = s.query(Area).filter(Area.level == "grid").count()
        t = time.perf_counter()
        idx = service.grid_index(session=s)
        build_s = time.perf_counter() - t
        pts = [(rnd.uniform(district.min_lon, district.max_lon), rnd.uniform(district.min_lat, district.max_lat))
               for _ in range(20_000)]
        single = rate(lambda p: idx.locate(p[0], p[1]), pts, args.seconds)
        lons, lats = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
        vec = rate(lambda _: idx.locate_many(lons, lats), [None], args.seconds) * len(pts)
        db_pts = pts[:300]
        engine_rate = rate(lambda p: service.locate_in_database(session=s, lon=p[0], lat=p[1]), db_pts,
                           args.seconds)
        agree = sum(idx.locate(*p) == (service.locate_in_database(session=s, lon=p[0], lat=p[1]).get("grid")
                                       or Area(id=None)).id for p in db_pts)
        buildings = s.query(Building).order_by(Building.id).all()
        t = time.perf_counter()
        service.address_index(session=s)
        addr_build_s = time.perf_counter() - t
        sample = rnd.sample(buildings, 2000)
        exact_q = [b.address for b in sample]
        fuzzy_q = [normalize(b.address, ["徐汇区"]).replace("号", "號").replace("弄", "弄 ") for b in sample[:500]]
        exact = rate(lambda q: service.match_address(session=s, text=q), exact_q, args.seconds)
        fuzzy = rate(lambda q: service.match_address(session=s, text=q), fuzzy_q, args.seconds)
        fuzzy_hit = sum(service.match_address(session=s, text=q)[0].building_id == b.id
                        for q, b in zip(fuzzy_q, sample[:500], strict=True)) / len(fuzzy_q)
    print(f"\ndatabase: {engine.url.render_as_string()}  ({grids} grids, {len(buildings):,} buildings)")
    print("point → grid (aim: 100,000/s in process)")
    print(f"  index build                     {build_s:10.2f} s")
    print(f"  in process, one call per point  {single:12,.0f} /s")
    print(f"  in process, vectorised          {vec:12,.0f} /s")
    print(f"  engine spatial query ({engine.dialect.name:<10}) {engine_rate:8,.0f} /s   "
          f"(index agrees on {agree}/{len(db_pts)} points)")
    print("address text → building")
    print(f"  index build                     {addr_build_s:10.2f} s")
    print(f"  exact (full address)            {exact:12,.0f} /s")
    print(f"  fuzzy (variant spelling)        {fuzzy:12,.0f} /s   (top hit right for {fuzzy_hit:.1%})")


if __name__ == "__main__":
    main()
