"""API shapes of the registries. Personal fields are masked unless the caller's role needs them."""

from __future__ import annotations

import json
from datetime import date

from pydantic import BaseModel, Field

from citybase.core.masking import mask_id_number, mask_name, mask_phone
from citybase.core.schemas import Id
from citybase.registry.models import Department, LegalEntity, Person

PERSON_PII = ["id_number", "name", "phone", "birth_date"]
ENTITY_PII = ["legal_rep_name", "legal_rep_id_number"]


class DepartmentRead(BaseModel):
    id: int
    code: str
    name: str
    short_name: str
    kind: str
    area_code: str | None
    duties: list[str]
    phone: str | None

    @classmethod
    def of(cls, d: Department, area_codes: dict[int, str]) -> DepartmentRead:
        return cls(id=d.id, code=d.code, name=d.name, short_name=d.short_name, kind=d.kind,
                   area_code=area_codes.get(d.area_id) if d.area_id else None,
                   duties=json.loads(d.duties), phone=d.phone)


class PersonRead(BaseModel):
    id: int
    id_number: str
    name: str
    sex: str
    birth_date: str
    phone: str | None
    household_no: str
    building_id: int | None
    registered_address: str
    masked: bool

    @classmethod
    def of(cls, p: Person, *, masked: bool) -> PersonRead:
        return cls(id=p.id, id_number=mask_id_number(p.id_number) if masked else p.id_number,
                   name=mask_name(p.name) if masked else p.name, sex=p.sex,
                   birth_date=f"{p.birth_date.year}-**-**" if masked else p.birth_date.isoformat(),
                   phone=mask_phone(p.phone) if masked else p.phone, household_no=p.household_no,
                   building_id=p.building_id, registered_address=p.registered_address, masked=masked)


class PersonCreate(BaseModel):
    id_number: str = Field(..., description="GB 11643, 18 characters")
    name: str = Field(..., min_length=1, max_length=32)
    phone: str | None = None
    household_no: str = Field(..., min_length=1, max_length=20)
    building_id: Id | None = None
    address: str | None = Field(None, description="address in words, matched to a building if building_id is absent")
    sex: str | None = Field(None, pattern="^[MF]$")
    birth_date: date | None = None


class EntityRead(BaseModel):
    id: int
    uscc: str
    name: str
    entity_type: str
    industry_code: str
    industry: str
    building_id: int | None
    address: str
    legal_rep_name: str
    legal_rep_id_number: str
    registered_capital: float
    established_on: date
    status: str
    masked: bool

    @classmethod
    def of(cls, e: LegalEntity, *, masked: bool) -> EntityRead:
        return cls(id=e.id, uscc=e.uscc, name=e.name, entity_type=e.entity_type, industry_code=e.industry_code,
                   industry=e.industry, building_id=e.building_id, address=e.address,
                   legal_rep_name=mask_name(e.legal_rep_name) if masked else e.legal_rep_name,
                   legal_rep_id_number=mask_id_number(e.legal_rep_id_number) if masked else e.legal_rep_id_number,
                   registered_capital=e.registered_capital, established_on=e.established_on, status=e.status,
                   masked=masked)


class EntityCreate(BaseModel):
    uscc: str = Field(..., description="GB 32100, 18 characters")
    name: str = Field(..., min_length=1, max_length=100)
    entity_type: str
    industry_code: str = Field(..., max_length=4)
    industry: str = Field(..., max_length=32)
    legal_rep_name: str = Field(..., min_length=1, max_length=32)
    legal_rep_id_number: str
    registered_capital: float = Field(..., ge=0)
    established_on: date
    building_id: Id | None = None
    address: str | None = None


class IdentifierCheck(BaseModel):
    kind: str
    value: str
    valid: bool
    normalized: str | None = None
    error: str | None = None
    position: int | None = None
    fix: str | None = None
