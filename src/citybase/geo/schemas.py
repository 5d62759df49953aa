"""API shapes of the spatial base; ``of`` builds each from the domain's objects."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from citybase.geo.address import Match
from citybase.geo.models import Area, Building


class AreaRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str
    level: str
    center_lon: float
    center_lat: float
    area_km2: float
    bbox: list[float]

    @classmethod
    def of(cls, a: Area) -> AreaRead:
        return cls(code=a.code, name=a.name, level=a.level, center_lon=a.center_lon, center_lat=a.center_lat,
                   area_km2=round(a.area_km2, 4), bbox=[a.min_lon, a.min_lat, a.max_lon, a.max_lat])


class AreaRef(BaseModel):
    code: str
    name: str

    @classmethod
    def of(cls, a: Area) -> AreaRef:
        return cls(code=a.code, name=a.name)


class LocationRead(BaseModel):
    lon: float
    lat: float
    grid: AreaRef
    community: AreaRef
    street: AreaRef
    district: AreaRef

    @classmethod
    def of(cls, lon: float, lat: float, loc: Any) -> LocationRead:
        """From a ``service.Location`` (its grid, community, street and district areas)."""
        return cls(lon=lon, lat=lat, grid=AreaRef.of(loc.grid), community=AreaRef.of(loc.community),
                   street=AreaRef.of(loc.street), district=AreaRef.of(loc.district))


class BuildingRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    address: str
    road: str
    lon: float
    lat: float
    floors: int
    use: str
    grid_code: str | None = None

    @classmethod
    def of(cls, b: Building, grid_codes: dict[int, str]) -> BuildingRead:
        r = cls.model_validate(b)
        r.grid_code = grid_codes.get(b.grid_id)
        return r


class AddressMatchRead(BaseModel):
    building_id: int
    address: str
    score: float
    how: str

    @classmethod
    def of(cls, m: Match) -> AddressMatchRead:
        return cls(building_id=m.building_id, address=m.address, score=m.score, how=m.how)
