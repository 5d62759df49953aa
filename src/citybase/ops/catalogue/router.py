"""HTTP API of the catalogue (mounted under /api/v1/ops): categories, rules and the routing preview."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from citybase.core.i18n import render
from citybase.core.schemas import FilterText, Id
from citybase.geo import service as geo
from citybase.ops.catalogue import service
from citybase.ops.catalogue.schemas import CategoryRead, CategoryWrite, RuleRead, RuleWrite
from citybase.security.deps import allow, get_session
from citybase.security.roles import PUBLIC, STAFF
from citybase.security.service import Principal

router = APIRouter(prefix="/ops", tags=["一网统管 incident loop"])


@router.get("/categories", response_model=list[CategoryRead], summary="The category tree (部件/事件)")
def list_categories(_: Principal = Depends(allow(PUBLIC)), session: Session = Depends(get_session, scope="function")) -> list[CategoryRead]:
    return [CategoryRead.of(c) for c in service.list_categories(session=session)]


@router.put("/categories/{code}", response_model=CategoryRead, summary="Create or change a category")
def put_category(code: FilterText, body: CategoryWrite, _: Principal = Depends(allow("admin")),
                 session: Session = Depends(get_session, scope="function")) -> CategoryRead:
    return CategoryRead.of(service.upsert_category(session=session, code=code, **body.model_dump()))


@router.get("/rules", response_model=list[RuleRead], summary="Active responsibility rules (权责清单)")
def list_rules(_: Principal = Depends(allow(*STAFF)), session: Session = Depends(get_session, scope="function")) -> list[RuleRead]:
    return [RuleRead.of(r) for r in service.active_rules(session=session)]


@router.post("/rules", response_model=RuleRead, status_code=201, summary="Add a rule or a new version of one")
def add_rule(body: RuleWrite, _: Principal = Depends(allow("admin")), session: Session = Depends(get_session, scope="function")) -> RuleRead:
    return RuleRead.of(service.add_rule(session=session, **body.model_dump()))


@router.delete("/rules/{rule_id}", response_model=RuleRead, summary="Retire a rule (history keeps it)")
def retire_rule(rule_id: Id, _: Principal = Depends(allow("admin")), session: Session = Depends(get_session, scope="function")) -> RuleRead:
    return RuleRead.of(service.retire_rule(session=session, rule_id=rule_id))


@router.get("/route", summary="Which department a category goes to at a point, and which rule says so")
def preview_route(category_code: FilterText, lon: float, lat: float, _: Principal = Depends(allow(*STAFF)),
                  session: Session = Depends(get_session, scope="function")) -> dict:
    service.get_category(session=session, code=category_code)
    loc = geo.locate(session=session, lon=lon, lat=lat)
    d = service.route(session=session, category_code=category_code, grid_id=loc.grid.id,
                      community_id=loc.community.id, street_id=loc.street.id)
    return {"rule_id": d.rule_id, "main_department_id": d.main_department_id,
            "assist_department_ids": list(d.assist_department_ids), "why": render(d.why)}
