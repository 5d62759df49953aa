"""HTTP API of notifications (mounted under /api/v1/ops): the webhooks of department systems."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from citybase.core.schemas import Id
from citybase.ops.notifications import service
from citybase.security.deps import allow, get_session
from citybase.security.service import Principal

router = APIRouter(prefix="/ops", tags=["一网统管 incident loop"])


@router.get("/webhooks", summary="Department systems that receive incident events")
def list_webhooks(_: Principal = Depends(allow("admin")), session: Session = Depends(get_session, scope="function")) -> list[dict]:
    return [{"id": w.id, "department_id": w.department_id, "url": w.url, "events": w.events, "active": w.active}
            for w in service.list_webhooks(session=session)]


@router.post("/webhooks", status_code=201, summary="Subscribe a department system to incident events")
def add_webhook(body: dict, _: Principal = Depends(allow("admin")), session: Session = Depends(get_session, scope="function")) -> dict:
    body = body if isinstance(body, dict) else {}
    hook = service.add_webhook(session=session, url=body.get("url"), events=body.get("events"),
                               department_code=body.get("department_code"), secret=body.get("secret"))
    return {"id": hook.id, "department_id": hook.department_id, "url": hook.url, "events": hook.events,
            "secret": hook.secret}


@router.get("/webhooks/{webhook_id}/deliveries", summary="The delivery log of a webhook")
def webhook_deliveries(webhook_id: Id, limit: int = Query(100, ge=1, le=1000), _: Principal = Depends(allow("admin")),
                       session: Session = Depends(get_session, scope="function")) -> list[dict]:
    return [{"event_id": d.event_id, "subject": d.subject, "attempt": d.attempt, "status": d.status,
             "response_code": d.response_code, "error": d.error, "at": d.at}
            for d in service.webhook_deliveries(session=session, webhook_id=webhook_id, limit=limit)]
