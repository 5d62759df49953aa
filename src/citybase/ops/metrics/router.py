"""HTTP API of the metrics (mounted under /api/v1/ops): rates by group, hotspots, counts by status."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from citybase.ops.metrics import service as metrics
from citybase.ops.metrics.schemas import MetricRow
from citybase.security.deps import allow, get_session
from citybase.security.roles import PUBLIC
from citybase.security.service import Principal

router = APIRouter(prefix="/ops", tags=["一网统管 incident loop"])


@router.get("/metrics", response_model=list[MetricRow], summary="按期办结率, 满意率, 重复率, 退单率, 先行联系率… by department, street, grid or category")
def get_metrics(by: str = Query("department", pattern="^(department|street|grid|category|channel|all)$"),
                since: datetime | None = None, until: datetime | None = None,
                _: Principal = Depends(allow("analyst", "dispatcher", "admin")),
                session: Session = Depends(get_session, scope="function")) -> list[dict]:
    return metrics.compute(session=session, by=by, since=since, until=until)


@router.get("/hotspots", summary="Grids with the most incidents, and problems that keep coming back")
def hotspots(days: int = Query(30, ge=1, le=365), limit: int = Query(10, ge=1, le=100),
             _: Principal = Depends(allow("analyst", "dispatcher", "admin")),
             session: Session = Depends(get_session, scope="function")) -> dict:
    return metrics.hotspots(session=session, days=days, limit=limit)


@router.get("/stats", summary="Counts of incidents by status (for the screens)")
def ops_stats(_: Principal = Depends(allow(PUBLIC)), session: Session = Depends(get_session, scope="function")) -> dict:
    return metrics.count_by_status(session=session)
