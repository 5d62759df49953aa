"""HTTP API of the spatial base (mounted under /api/v1)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from citybase.core.schemas import FilterText, Id, Page, PageNo, PageSize
from citybase.geo import service
from citybase.geo.schemas import AddressMatchRead, AreaRead, BuildingRead, LocationRead
from citybase.security.deps import allow, get_session
from citybase.security.roles import PUBLIC, STAFF
from citybase.security.service import Principal

router = APIRouter(tags=["spatial base"])
LEVEL = Query(None, pattern="^(district|street|community|grid)$", description="district, street, community or grid")


@router.get("/areas", response_model=list[AreaRead], summary="Areas by level and parent")
def list_areas(level: str | None = LEVEL, parent: FilterText | None = Query(None, description="parent area code"),
               _: Principal = Depends(allow(PUBLIC)), session: Session = Depends(get_session, scope="function")) -> list[AreaRead]:
    return [AreaRead.of(a) for a in service.list_areas(session=session, level=level, parent_code=parent)]


@router.get("/areas/tree", summary="District → streets → communities (→ grids with depth=4)")
def area_tree(depth: int = Query(3, ge=1, le=4), _: Principal = Depends(allow(PUBLIC)),
              session: Session = Depends(get_session, scope="function")) -> list[dict[str, Any]]:
    return service.area_tree(session=session, depth=depth)


@router.get("/areas/geojson", summary="GeoJSON FeatureCollection of one level")
def areas_geojson(level: str = Query("street", pattern="^(district|street|community|grid)$"),
                  parent: FilterText | None = None, _: Principal = Depends(allow(PUBLIC)),
                  session: Session = Depends(get_session, scope="function")) -> dict[str, Any]:
    return service.areas_geojson(session=session, level=level, parent_code=parent)


@router.get("/areas/{code}", response_model=AreaRead, summary="One area by code")
def get_area(code: FilterText, _: Principal = Depends(allow(PUBLIC)), session: Session = Depends(get_session, scope="function")) -> AreaRead:
    return AreaRead.of(service.get_area(session=session, code=code))


@router.get("/locate", response_model=LocationRead, summary="Point → grid, community, street, district")
def locate(lon: float = Query(..., description="WGS-84 longitude"), lat: float = Query(..., description="WGS-84 latitude"),
           _: Principal = Depends(allow(PUBLIC)), session: Session = Depends(get_session, scope="function")) -> LocationRead:
    return LocationRead.of(lon, lat, service.locate(session=session, lon=lon, lat=lat))


@router.get("/buildings", response_model=Page[BuildingRead], summary="Buildings, filtered by area, road and use")
def list_buildings(area: FilterText | None = Query(None, description="street, community or grid code"),
                   road: FilterText | None = None, use: FilterText | None = None,
                   page: PageNo = 1, page_size: PageSize = 50,
                   _: Principal = Depends(allow(*STAFF)), session: Session = Depends(get_session, scope="function")) -> Page[BuildingRead]:
    rows, total = service.list_buildings(session=session, area_code=area, road=road, use=use, page=page,
                                         page_size=page_size)
    grids = service.grid_codes(session=session, ids=sorted({b.grid_id for b in rows}))
    return Page(items=[BuildingRead.of(b, grids) for b in rows], total=total, page=page, page_size=page_size)


@router.get("/buildings/{building_id}", response_model=BuildingRead, summary="One building")
def get_building(building_id: Id, _: Principal = Depends(allow(*STAFF)),
                 session: Session = Depends(get_session, scope="function")) -> BuildingRead:
    b = service.get_building(session=session, building_id=building_id)
    return BuildingRead.of(b, service.grid_codes(session=session, ids=[b.grid_id]))


@router.get("/addresses/match", response_model=list[AddressMatchRead], summary="Address in words → buildings")
def match_address(q: str = Query(..., min_length=1, max_length=200, description="address text, e.g. 漕溪北路398弄12号"),
                  limit: int = Query(5, ge=1, le=20), _: Principal = Depends(allow(*STAFF)),
                  session: Session = Depends(get_session, scope="function")) -> list[AddressMatchRead]:
    return [AddressMatchRead.of(m) for m in service.match_address(session=session, text=q, limit=limit)]
