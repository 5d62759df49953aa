"""HTTP API of the registries. Unmasked personal data goes only to roles that need it, and every
such read is written to the audit log."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.orm import Session

from citybase.core.errors import InvalidIdentifier, InvalidInput
from citybase.core.i18n import render
from citybase.core.ids import validate_admin_code, validate_id_number, validate_uscc
from citybase.core.schemas import FilterText, Id, Page, PageNo, PageSize
from citybase.geo import service as geo
from citybase.registry import service
from citybase.registry.schemas import (
    ENTITY_PII,
    PERSON_PII,
    DepartmentRead,
    EntityCreate,
    EntityRead,
    IdentifierCheck,
    PersonCreate,
    PersonRead,
)
from citybase.security import audit
from citybase.security.deps import allow, get_session, request_id
from citybase.security.pii import audit_filter, require_full_sight, used_filters
from citybase.security.roles import PII_ROLES, PUBLIC, STAFF
from citybase.security.service import Principal

router = APIRouter(tags=["registries"])
PERSON_READERS = ("admin", "dispatcher", "handler", "grid_inspector", "data_officer")


def _audit_unmasked(request: Request, p: Principal, subject_type: str, ids: list[int], fields: list[str]) -> None:
    if ids:
        audit.record(request.app.state.engine, actor=p.actor, roles=",".join(sorted(p.roles)),
                     action=f"read.{subject_type}.unmasked", subject_type=subject_type, subject_ids=ids,
                     fields=fields, request_id=request_id(request))


@router.get("/departments", response_model=list[DepartmentRead], summary="Departments and their duties")
def list_departments(kind: FilterText | None = None, _: Principal = Depends(allow(*STAFF)),
                     session: Session = Depends(get_session, scope="function")) -> list[DepartmentRead]:
    codes = geo.area_codes(session=session)
    return [DepartmentRead.of(d, codes) for d in service.list_departments(session=session, kind=kind)]


@router.get("/departments/{code}", response_model=DepartmentRead, summary="One department")
def get_department(code: FilterText, _: Principal = Depends(allow(*STAFF)),
                   session: Session = Depends(get_session, scope="function")) -> DepartmentRead:
    d = service.get_department(session=session, code=code)
    codes = geo.area_codes(session=session)
    return DepartmentRead.of(d, codes)


@router.get("/persons", response_model=Page[PersonRead], summary="Persons (masked unless your role needs them)")
def list_persons(request: Request, area: FilterText | None = Query(None, description="street, community or grid code"),
                 building_id: Id | None = None,
                 name: FilterText | None = Query(None, description="exact name; only for roles that see names in full"),
                 id_number: FilterText | None = Query(None, description="exact ID number; only for roles that see it in full"),
                 household_no: FilterText | None = None, page: PageNo = 1, page_size: PageSize = 50,
                 p: Principal = Depends(allow(*PERSON_READERS)),
                 session: Session = Depends(get_session, scope="function")) -> Page[PersonRead]:
    # a filter on a masked field would confirm a guess of the hidden part: only for those who see it
    personal = used_filters(name=name, id_number=id_number)
    require_full_sight(p, personal, sees_in_full=p.sees_pii, who=", ".join(sorted(PII_ROLES)),
                       fix="Filter by area, building_id or household_no, or ask a data officer to look the person up.")
    rows, total = service.list_persons(session=session, area_code=area, building_id=building_id, name=name,
                                       id_number=id_number, household_no=household_no, page=page,
                                       page_size=page_size)
    audit_filter(request, p, subject_type="person", used=personal, ids=[r.id for r in rows])
    masked = not p.sees_pii
    if not masked:
        _audit_unmasked(request, p, "person", [r.id for r in rows], PERSON_PII)
    return Page(items=[PersonRead.of(r, masked=masked) for r in rows], total=total, page=page, page_size=page_size)


@router.get("/persons/{person_id}", response_model=PersonRead, summary="One person")
def get_person(request: Request, person_id: Id, p: Principal = Depends(allow(*PERSON_READERS)),
               session: Session = Depends(get_session, scope="function")) -> PersonRead:
    person = service.get_person(session=session, person_id=person_id)
    if p.sees_pii:
        _audit_unmasked(request, p, "person", [person.id], PERSON_PII)
    return PersonRead.of(person, masked=not p.sees_pii)


@router.post("/persons", response_model=PersonRead, status_code=201, summary="Register a person")
def create_person(request: Request, body: PersonCreate, p: Principal = Depends(allow("data_officer")),
                  session: Session = Depends(get_session, scope="function")) -> PersonRead:
    person = service.create_person(session=session, **body.model_dump())
    session.commit()  # the person (and its event) is stored before the audit records that it was shown
    _audit_unmasked(request, p, "person", [person.id], PERSON_PII)
    return PersonRead.of(person, masked=False)


@router.get("/legal-entities", response_model=Page[EntityRead], summary="Legal entities (representatives masked)")
def list_entities(request: Request, area: FilterText | None = Query(None, description="street, community or grid code"),
                  entity_type: FilterText | None = None, industry_code: FilterText | None = None,
                  name: FilterText | None = Query(None, description="part of the name"), uscc: FilterText | None = None,
                  page: PageNo = 1, page_size: PageSize = 50,
                  p: Principal = Depends(allow(*STAFF)), session: Session = Depends(get_session, scope="function")) -> Page[EntityRead]:
    rows, total = service.list_entities(session=session, area_code=area, entity_type=entity_type,
                                        industry_code=industry_code, name=name, uscc=uscc, page=page,
                                        page_size=page_size)
    masked = not p.sees_pii
    if not masked:
        _audit_unmasked(request, p, "legal_entity", [r.id for r in rows], ENTITY_PII)
    return Page(items=[EntityRead.of(r, masked=masked) for r in rows], total=total, page=page, page_size=page_size)


@router.get("/legal-entities/{entity_id}", response_model=EntityRead, summary="One legal entity")
def get_entity(request: Request, entity_id: Id, p: Principal = Depends(allow(*STAFF)),
               session: Session = Depends(get_session, scope="function")) -> EntityRead:
    e = service.get_entity(session=session, entity_id=entity_id)
    if p.sees_pii:
        _audit_unmasked(request, p, "legal_entity", [e.id], ENTITY_PII)
    return EntityRead.of(e, masked=not p.sees_pii)


@router.post("/legal-entities", response_model=EntityRead, status_code=201, summary="Register a legal entity")
def create_entity(request: Request, body: EntityCreate, p: Principal = Depends(allow("data_officer")),
                  session: Session = Depends(get_session, scope="function")) -> EntityRead:
    e = service.create_entity(session=session, **body.model_dump())
    session.commit()  # stored (with its event) before the audit records that it was shown
    _audit_unmasked(request, p, "legal_entity", [e.id], ENTITY_PII)
    return EntityRead.of(e, masked=False)


_VALIDATORS = {"id_number": validate_id_number, "uscc": validate_uscc, "admin_code": validate_admin_code}


@router.get("/identifiers/check", response_model=IdentifierCheck, summary="Check a national identifier")
def check_identifier(kind: str = Query(..., pattern="^(id_number|uscc|admin_code)$"),
                     value: str = Query(..., max_length=40), _: Principal = Depends(allow(PUBLIC))) -> IdentifierCheck:
    try:
        norm = _VALIDATORS[kind](value)
    except InvalidIdentifier as exc:
        return IdentifierCheck(kind=kind, value=value, valid=False, error=render(exc.detail),
                               position=exc.extra.get("position"), fix=render(exc.fix))
    except InvalidInput as exc:  # pragma: no cover - validators raise InvalidIdentifier
        return IdentifierCheck(kind=kind, value=value, valid=False, error=render(exc.detail), fix=render(exc.fix))
    return IdentifierCheck(kind=kind, value=value, valid=True, normalized=norm)


@router.get("/stats", summary="Counts of the registries and the spatial base")
def stats(_: Principal = Depends(allow(PUBLIC)), session: Session = Depends(get_session, scope="function")) -> dict:
    return service.stats(session=session)
