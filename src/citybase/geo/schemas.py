"""API shapes of the spatial base."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class AreaRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str
    level: str
    center_lon: float
    center_lat: float
    area_km2: float
    bbox: list[float]


class AreaRef(BaseModel):
    code: str
    name: str


class LocationRead(BaseModel):
    lon: float
    lat: float
    grid: AreaRef
    community: AreaRef
    street: AreaRef
    district: AreaRef


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


class AddressMatchRead(BaseModel):
    building_id: int
    address: str
    score: float
    how: str
