"""``/ngsi-ld/v1/csourceRegistrations``: register, list, read, update and delete context sources;
``/ngsi-ld/v1/csourceSubscriptions``: subscriptions to those registrations."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

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
    _int,
    _known_params,
    _query,
    _time_query,
    also_with_a_trailing_slash,
    answer,
    call_of,
    contexts_of,
    no_content,
    read_body,
    read_merge,
    read_query,
)
from citybase.twin.sources import service, subscribing

FILTERS = ("type", "attrs", "id", "idPattern", "q", "csf", "georel", "geometry", "coordinates", "timerel", "timeAt")
PAGE_TYPE = "application/ld+json"
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
    rows = service.listed(session=session, call=call, query=_discovery(request, call))
    headers = {"NGSILD-Results-Count": str(len(rows))} if request.query_params.get("count") == "true" else {}
    links = []  # the neighbouring pages (§5.5.9), with the query's other parameters
    if offset > 0 and limit:
        links.append((max(0, offset - limit), "prev"))
    if limit and offset + limit < len(rows):
        links.append((offset + limit, "next"))
    if links:
        rest = [(k, v) for k, v in request.query_params.multi_items() if k not in ("limit", "offset")]
        headers["Link"] = ", ".join(
            f'<{PREFIX}/csourceRegistrations?{urlencode([*rest, ("limit", limit), ("offset", o)], safe=":,")}>; '
            f'rel="{rel}"; type="{PAGE_TYPE}"' for o, rel in links)
    return answer(call, inc, [service.shown(r, call) for r in rows[offset:offset + limit]], headers=headers)


def _discovery(request: Request, call: Any) -> service.Discovery:
    """The query's filters (§5.10.2): at least one of them, each checked."""
    from citybase.twin import query as ql

    p = request.query_params
    if not any(p.get(k) for k in FILTERS):
        raise BadRequestData("a query of registrations needs type, attrs, id, idPattern, q, csf or a geo-query")
    eq = _query(request, call)  # type, id, idPattern, attrs, q and the geo-query, as an entity query has them
    tq = _time_query(request, call)
    d = service.Discovery(types=eq.types, ids=eq.ids, id_pattern=eq.id_pattern, attrs=eq.attrs, q=eq.q, geo=eq.geo,
                          timerel=tq.timerel, time_at=tq.time_at, end_time_at=tq.end_time_at,
                          timeproperty=tq.timeproperty)
    if p.get("csf"):
        try:
            d.csf = ql.parse_q(p["csf"], call.resolver.expand)
        except ValueError as exc:
            raise BadRequestData(f"csf: {exc}") from None
    return d


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


# ------------------------------------------------------------------------------ /csourceSubscriptions (§5.11)


@router.post("/csourceSubscriptions", status_code=201, summary="Subscribe to context source registrations")
def create_subscription(request: Request, _: Any = Depends(WRITE), inc: Incoming = Depends(read_body),
                        session: Session = Depends(get_session, scope="function")) -> Response:
    sid = subscribing.create(session=session, call=call_of(request, inc), body=inc.body,
                             contexts=contexts_of(request), base_url=str(request.base_url))
    return no_content(inc, 201, {"Location": f"{PREFIX}/csourceSubscriptions/{quote(sid, safe=':')}"})


@router.get("/csourceSubscriptions", summary="Subscriptions to registrations (limit, offset, count)")
def query_subscriptions(request: Request, _: Any = Depends(READ), inc: Incoming = Depends(read_query),
                        session: Session = Depends(get_session, scope="function")) -> Response:
    from citybase.twin.subscriptions.router import QUERY_PARAMS, _sys_attrs

    call = call_of(request, inc)
    _known_params(request, QUERY_PARAMS)
    limit = _int(request, "limit", 20, high=1000) or 0
    offset = _int(request, "offset", 0) or 0
    subs, total = subscribing.listed(session=session, call=call, limit=limit, offset=offset,
                                     sys_attrs=_sys_attrs(request))
    headers = {"NGSILD-Results-Count": str(total)} if request.query_params.get("count") == "true" else {}
    links = []
    if offset > 0 and limit:
        links.append((max(0, offset - limit), "prev"))
    if limit and offset + limit < total:
        links.append((offset + limit, "next"))
    if links:
        headers["Link"] = ", ".join(f'<{PREFIX}/csourceSubscriptions?limit={limit}&offset={o}>; rel="{rel}"; '
                                    f'type="{PAGE_TYPE}"' for o, rel in links)
    return answer(call, inc, subs, headers=headers)


@router.get("/csourceSubscriptions/{sub_id:path}", summary="One subscription to registrations")
def get_subscription(sub_id: str, request: Request, _: Any = Depends(READ), inc: Incoming = Depends(read_query),
                     session: Session = Depends(get_session, scope="function")) -> Response:
    from citybase.twin.subscriptions.router import _sys_attrs

    if not sub_id:
        return query_subscriptions(request, _, inc, session)
    call = call_of(request, inc)
    return answer(call, inc, subscribing.get(session=session, call=call, sub_id=sub_id, sys_attrs=_sys_attrs(request)))


@router.patch("/csourceSubscriptions/{sub_id}", status_code=204, summary="Update a subscription to registrations")
def update_subscription(sub_id: str, request: Request, _: Any = Depends(WRITE), inc: Incoming = Depends(read_merge),
                        session: Session = Depends(get_session, scope="function")) -> Response:
    subscribing.update(session=session, call=call_of(request, inc), sub_id=sub_id, body=inc.body,
                       contexts=contexts_of(request), base_url=str(request.base_url))
    return no_content(inc)


@router.delete("/csourceSubscriptions/{sub_id}", status_code=204, summary="Delete a subscription to registrations")
def delete_subscription(sub_id: str, request: Request, _: Any = Depends(WRITE), inc: Incoming = Depends(read_query),
                        session: Session = Depends(get_session, scope="function")) -> Response:
    subscribing.delete(session=session, call=call_of(request, inc), sub_id=sub_id)
    return no_content(inc)


@router.api_route("/csourceSubscriptions/", methods=["PATCH", "PUT", "DELETE"], include_in_schema=False)
@router.api_route("/csourceRegistrations/", methods=["PATCH", "PUT", "DELETE"], include_in_schema=False)
def no_id(request: Request, _: Any = Depends(READ)) -> Response:
    """PATCH or DELETE with the id left out: not an operation on the collection (405)."""
    err = OperationNotSupported(f"{request.method} needs an id: {request.url.path[:200]}<id>")
    err.status = 405
    raise err


also_with_a_trailing_slash(router)
