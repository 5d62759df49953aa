"""The NGSI-LD subscription API (CIM 009 v1.8 §5.8, §6.10) at /ngsi-ld/v1/subscriptions: create, query (paged),
retrieve, update and delete, per NGSILD-Tenant, answered and failing as the rest of the twin's API (the route
class, the access declarations and the request readers are the twin router's)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from citybase.security.deps import get_session
from citybase.twin.errors import BadRequestData, OperationNotSupported
from citybase.twin.router import (
    PREFIX,
    READ,
    WRITE,
    Incoming,
    NgsiRoute,
    _bool,
    _int,
    _known_params,
    answer,
    call_of,
    contexts_of,
    no_content,
    read_body,
    read_merge,
    read_query,
)
from citybase.twin.settings import twin_settings
from citybase.twin.subscriptions import service
from citybase.twin.subscriptions.schemas import SubscriptionRead

QUERY_PARAMS = frozenset({"limit", "offset", "count", "options", "local"})  # of the subscription list

router = APIRouter(prefix=PREFIX, route_class=NgsiRoute, tags=["NGSI-LD subscriptions"])


def _sys_attrs(request: Request) -> bool:
    opts = {o.strip() for v in request.query_params.getlist("options") for o in v.split(",") if o.strip()}
    unknown = opts - {"sysAttrs"}
    if unknown:
        raise BadRequestData(f"unknown options {', '.join(sorted(unknown))}; subscriptions know sysAttrs")
    return "sysAttrs" in opts


def _no_id(request: Request, sub_id: str) -> None:
    """PATCH or DELETE on …/subscriptions/ names no subscription: not an operation there (405)."""
    if not sub_id:
        err = OperationNotSupported(f"{request.method} needs a subscription id: …/subscriptions/{{id}}")
        err.status = 405
        raise err


@router.post("/subscriptions", status_code=201, summary="Create a subscription")
def create_subscription(request: Request, _: Any = Depends(WRITE), inc: Incoming = Depends(read_body),
                        session: Session = Depends(get_session, scope="function")) -> Response:
    call = call_of(request, inc)
    sid = service.create_subscription(session=session, call=call, body=inc.body, contexts=contexts_of(request),
                                      base_url=str(request.base_url))
    return no_content(inc, 201, {"Location": f"{PREFIX}/subscriptions/{quote(sid, safe=':/')}"})


@router.get("/subscriptions", summary="Query subscriptions (limit, offset, count)",
            responses={200: {"model": list[SubscriptionRead]}})
def query_subscriptions(request: Request, _: Any = Depends(READ), inc: Incoming = Depends(read_query),
                        session: Session = Depends(get_session, scope="function")) -> Response:
    call = call_of(request, inc)
    _known_params(request, QUERY_PARAMS)
    limit = _int(request, "limit", 20, high=twin_settings().max_limit) or 0
    offset = _int(request, "offset", 0) or 0
    subs, total = service.list_subscriptions(session=session, call=call, limit=limit, offset=offset,
                                             count=True, sys_attrs=_sys_attrs(request))
    headers = {"NGSILD-Results-Count": str(total)} if _bool(request, "count") else {}
    links = []  # the neighbouring pages (§5.5.9)
    if offset > 0 and limit:
        links.append((max(0, offset - limit), "prev"))
    if limit and total is not None and offset + limit < total:
        links.append((offset + limit, "next"))
    if links:
        headers["Link"] = ", ".join(f'<{PREFIX}/subscriptions?limit={limit}&offset={o}>; rel="{rel}"; '
                                    f'type="{inc.accept}"' for o, rel in links)
    return answer(call, inc, subs, headers=headers or None)


@router.get("/subscriptions/{sub_id:path}", summary="Retrieve a subscription",
            responses={200: {"model": SubscriptionRead}})
def get_subscription(sub_id: str, request: Request, _: Any = Depends(READ), inc: Incoming = Depends(read_query),
                     session: Session = Depends(get_session, scope="function")) -> Response:
    call = call_of(request, inc)
    if not sub_id:  # …/subscriptions/ : the query, with a trailing slash
        return query_subscriptions(request, _, inc, session)
    return answer(call, inc, service.get_subscription(session=session, call=call, sub_id=sub_id,
                                                      sys_attrs=_sys_attrs(request)))


@router.patch("/subscriptions/{sub_id:path}", status_code=204, summary="Update a subscription (a fragment)")
def update_subscription(sub_id: str, request: Request, _: Any = Depends(WRITE), inc: Incoming = Depends(read_merge),
                        session: Session = Depends(get_session, scope="function")) -> Response:
    _no_id(request, sub_id)
    service.update_subscription(session=session, call=call_of(request, inc), sub_id=sub_id, body=inc.body,
                                contexts=contexts_of(request), base_url=str(request.base_url))
    return no_content(inc)


@router.delete("/subscriptions/{sub_id:path}", status_code=204, summary="Delete a subscription")
def delete_subscription(sub_id: str, request: Request, _: Any = Depends(WRITE), inc: Incoming = Depends(read_query),
                        session: Session = Depends(get_session, scope="function")) -> Response:
    _no_id(request, sub_id)
    service.delete_subscription(session=session, call=call_of(request, inc), sub_id=sub_id)
    return no_content(inc)


# …/subscriptions/ as …/subscriptions: NGSI-LD clients build URLs with a trailing slash (see twin.router)
router.add_api_route("/subscriptions/", create_subscription, methods=["POST"], status_code=201,
                     include_in_schema=False)
