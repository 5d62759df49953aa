"""``/ngsi-ld/v1/csourceRegistrations``: register, list, read, update and delete context sources."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from citybase.security.deps import get_session
from citybase.twin.router import (
    PREFIX,
    READ,
    WRITE,
    Incoming,
    NgsiRoute,
    _int,
    also_with_a_trailing_slash,
    answer,
    call_of,
    no_content,
    read_body,
    read_merge,
    read_query,
)
from citybase.twin.sources import service

router = APIRouter(prefix=PREFIX, route_class=NgsiRoute, tags=["NGSI-LD twin"])


@router.post("/csourceRegistrations", status_code=201, summary="Register a context source")
def create(request: Request, _: Any = Depends(WRITE), inc: Incoming = Depends(read_body),
           session: Session = Depends(get_session, scope="function")) -> Response:
    rid = service.create(session=session, call=call_of(request, inc), body=inc.body)
    return no_content(inc, 201, {"Location": f"{PREFIX}/csourceRegistrations/{quote(rid, safe=':')}"})


@router.get("/csourceRegistrations", summary="Context source registrations (limit, offset, count)")
def listed(request: Request, _: Any = Depends(READ), inc: Incoming = Depends(read_query),
           session: Session = Depends(get_session, scope="function")) -> Response:
    call = call_of(request, inc)
    limit = _int(request, "limit", 20, high=1000) or 0
    offset = _int(request, "offset", 0) or 0
    rows = service.listed(session=session, call=call)
    headers = {"NGSILD-Results-Count": str(len(rows))} if request.query_params.get("count") == "true" else {}
    return answer(call, inc, [service.shown(r, call) for r in rows[offset:offset + limit]], headers=headers)


@router.get("/csourceRegistrations/{registration_id:path}", summary="One context source registration")
def one(registration_id: str, request: Request, _: Any = Depends(READ), inc: Incoming = Depends(read_query),
        session: Session = Depends(get_session, scope="function")) -> Response:
    call = call_of(request, inc)
    if not registration_id:
        return listed(request, _, inc, session)
    return answer(call, inc, service.shown(service.get(session=session, call=call, registration_id=registration_id), call))


@router.patch("/csourceRegistrations/{registration_id}", status_code=204, summary="Update a registration")
def update(registration_id: str, request: Request, _: Any = Depends(WRITE), inc: Incoming = Depends(read_merge),
           session: Session = Depends(get_session, scope="function")) -> Response:
    service.update(session=session, call=call_of(request, inc), registration_id=registration_id, body=inc.body)
    return no_content(inc)


@router.delete("/csourceRegistrations/{registration_id}", status_code=204, summary="Delete a registration")
def delete(registration_id: str, request: Request, _: Any = Depends(WRITE), inc: Incoming = Depends(read_query),
           session: Session = Depends(get_session, scope="function")) -> Response:
    service.delete(session=session, call=call_of(request, inc), registration_id=registration_id)
    return no_content(inc)


also_with_a_trailing_slash(router)
