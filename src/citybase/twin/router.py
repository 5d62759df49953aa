"""The NGSI-LD API (ETSI GS CIM 009 v1.8) at /ngsi-ld/v1: context information, batches, discovery, the
temporal API and the @context store. Every failure is answered in the standard's problem format
(``application/json`` with an ``https://uri.etsi.org/ngsi-ld/errors/…`` type), never citybase's problem+json.

Bodies are read here, not by FastAPI: NGSI-LD payloads are JSON-LD whose names depend on the @context, so
they are checked by ``twin.representation`` after the context is known."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from citybase.core.errors import CitybaseError, Unauthenticated
from citybase.core.errors import Forbidden as CoreForbidden
from citybase.core.i18n import render
from citybase.kernel import faults
from citybase.security.deps import allow_open, get_session
from citybase.security.roles import STAFF
from citybase.twin import service
from citybase.twin.errors import (
    BadRequestData,
    Forbidden,
    InternalError,
    InvalidRequest,
    NgsiError,
    NotAcceptable,
    ResourceNotFound,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
)
from citybase.twin.ldcontext import (
    CORE_URL,
    CORE_URLS,
    JSONLD_REL,
    PACKAGED,
    ContextStore,
    core_document,
    packaged_document,
    packaged_url,
    parse_link,
)
from citybase.twin.settings import twin_settings
from citybase.twin.temporal import render_temporal

log = logging.getLogger("citybase.twin")
PREFIX = "/ngsi-ld/v1"
JSON, LD, GEO = "application/json", "application/ld+json", "application/geo+json"
MERGE = "application/merge-patch+json"
MAX_BODY = 16 * 1024 * 1024
WRITERS = ("admin", "data_officer")


def _anonymous(level: str) -> Callable[[], bool]:
    def open_() -> bool:
        a = twin_settings().anonymous
        return a == "write" or (a == "read" and level == "read")

    return open_


READ = allow_open(*STAFF, open_when=_anonymous("read"), error_media_type=JSON)
WRITE = allow_open(*WRITERS, open_when=_anonymous("write"), error_media_type=JSON)


def error_response(exc: BaseException) -> Response:
    """Any exception as the NGSI-LD problem answer (500 only for a bug, logged)."""
    headers: dict[str, str] = {}
    if isinstance(exc, NgsiError):
        err = exc
    elif isinstance(exc, Unauthenticated):
        err, headers = Unauthorized(render(exc.detail)), {"WWW-Authenticate": "Bearer"}
    elif isinstance(exc, CoreForbidden):
        err = Forbidden(render(exc.detail))
    elif isinstance(exc, RequestValidationError):
        err = BadRequestData("; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
                                       for e in exc.errors()))
    elif isinstance(exc, StarletteHTTPException):
        err = ResourceNotFound("there is no such resource") if exc.status_code == 404 else \
            BadRequestData(str(exc.detail))
        err.status = exc.status_code
    elif isinstance(exc, CitybaseError):
        if exc.status == 503:
            err, headers = Unavailable(render(exc.detail)), {"Retry-After": str(exc.extra.get("retry_after", 2))}
        else:
            err = BadRequestData(render(exc.detail))
            err.status = exc.status if exc.status < 500 else 400
    elif (down := faults.unavailable(exc)) is not None:
        log.warning("503 on the NGSI-LD API: %s", exc.__class__.__name__)
        err, headers = Unavailable(render(down.detail)), {"Retry-After": str(down.retry_after)}
    else:
        log.exception("unexpected error in the NGSI-LD API")
        err = InternalError("an unexpected error; it has been logged")
    body = json.dumps(err.body(), ensure_ascii=False).encode("utf-8")
    return Response(body, status_code=err.status, media_type=JSON, headers=headers)


class NgsiRoute(APIRoute):
    """A route whose every failure, dependencies included, is answered as an NGSI-LD error."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:  # noqa: BLE001 - every error is turned into the standard's answer
                return error_response(exc)

        return route


router = APIRouter(prefix=PREFIX, route_class=NgsiRoute, tags=["NGSI-LD twin"])

# ------------------------------------------------------------------------------------------ request reading


class Incoming:
    """What a request brings before its @context is resolved: tenant, body, @context and the answer's type."""

    def __init__(self, tenant: str, body: Any, context: Any, accept: str) -> None:
        self.tenant, self.body, self.context, self.accept = tenant, body, context, accept


def _tenant(request: Request) -> str:
    t = request.headers.get("ngsild-tenant", "").strip()
    if len(t) > 64 or (t and not re.match(r"^[\w\-.:/]+$", t)):
        raise BadRequestData("NGSILD-Tenant must be at most 64 letters, digits and - _ . : /")
    return t


def _accept(request: Request, *, geo: bool = False) -> str:
    header = request.headers.get("accept", "").lower()
    if not header.strip():
        return JSON
    ranked = []
    for i, part in enumerate(header.split(",")):
        fields = [p.strip() for p in part.split(";")]
        q = 1.0
        for f in fields[1:]:
            if f.startswith("q="):
                try:
                    q = float(f[2:])
                except ValueError:
                    q = 0.0
        ranked.append((-q, i, fields[0]))
    for _, _, mt in sorted(ranked):
        if mt in (JSON, LD):
            return mt
        if mt == GEO and geo:
            return GEO
        if mt in ("*/*", "application/*"):
            return JSON
    raise NotAcceptable(f"this operation answers {JSON} or {LD}" + (f" or {GEO}" if geo else "") +
                        f", not {header[:100]}")


def _no_nan(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_text(request: Request) -> None:
    """No NUL or other control character in the path or the parameters (PostgreSQL cannot store NUL)."""
    for k, v in [("path", request.url.path), *request.query_params.multi_items()]:
        if any(ord(ch) < 32 or 0xD800 <= ord(ch) <= 0xDFFF for ch in v):
            raise BadRequestData(f"{k} holds a control character or an unpaired surrogate; send plain UTF-8 text")


def _check_body(text: str, data: Any) -> None:
    if "\\u0000" in text or "\x00" in text:
        raise BadRequestData("the body holds a NUL character (\\u0000), which cannot be stored")
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequestData("the body holds an unpaired surrogate (\\ud800–\\udfff); send valid UTF-8") from None


async def _read(request: Request, *, body: bool, geo: bool = False, merge: bool = False,
                document: bool = False, batch: bool = False) -> Incoming:
    _check_text(request)
    tenant = _tenant(request)
    accept = _accept(request, geo=geo)
    link = parse_link(request.headers.get("link"))
    if not body:
        return Incoming(tenant, None, link, accept)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    allowed = (JSON, LD, MERGE) if merge else (JSON, LD)
    if ctype not in allowed:
        raise UnsupportedMediaType(f"send the body as {' or '.join(allowed)}, not {ctype[:60] or 'no Content-Type'}")
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise BadRequestData(f"the body is larger than {MAX_BODY // 1024 // 1024} MB")
    if not raw.strip():
        raise InvalidRequest("the body is empty; send a JSON document")
    try:
        text = raw.decode("utf-8")
        data = json.loads(text, parse_constant=_no_nan)
    except UnicodeDecodeError:
        raise InvalidRequest("the body is not UTF-8") from None
    except (ValueError, RecursionError) as exc:
        raise InvalidRequest(f"the body is not valid JSON: {str(exc)[:160]}") from None
    _check_body(text, data)
    context = link
    if document:  # a JSON-LD document itself (POST /jsonldContexts): its @context is its content
        return Incoming(tenant, data, None, accept)
    if ctype == LD and link is not None:
        raise BadRequestData("with Content-Type application/ld+json the @context goes in the body, not a Link header")
    if batch and isinstance(data, list):
        # each entity of a batch is refused alone (207) when its @context is where it must not be, or missing
        checked = []
        for item in data:
            if not isinstance(item, dict):
                checked.append(item)
            elif ctype == LD and "@context" not in item:
                checked.append(service.Refused(item, "an entity sent as application/ld+json must carry an @context"))
            elif ctype != LD and "@context" in item:
                checked.append(service.Refused(item, "an entity sent as application/json must not carry @context"))
            else:
                checked.append(item)
                if ctype == LD and context is None:
                    context = item["@context"]
        return Incoming(tenant, checked, context, accept)
    if ctype == LD:
        if not isinstance(data, dict) or "@context" not in data:
            raise BadRequestData("a body sent as application/ld+json must carry an @context")
        context = data["@context"]
    elif isinstance(data, dict) and "@context" in data:
        raise BadRequestData("a body sent as application/json must not carry @context: send it in a Link header, "
                             "or send the body as application/ld+json")
    return Incoming(tenant, data, context, accept)


async def read_body(request: Request) -> Incoming:
    return await _read(request, body=True)


async def read_batch(request: Request) -> Incoming:
    return await _read(request, body=True, batch=True)


async def read_document(request: Request) -> Incoming:
    return await _read(request, body=True, document=True)


async def read_merge(request: Request) -> Incoming:
    return await _read(request, body=True, merge=True)


async def read_query(request: Request) -> Incoming:
    return await _read(request, body=False)


async def read_geo_query(request: Request) -> Incoming:
    return await _read(request, body=False, geo=True)


_stores_lock = threading.Lock()


def contexts_of(request: Request) -> ContextStore:
    """The process's @context store (made on first use): the database's contexts, fetching the rest once."""
    state = request.app.state
    store = getattr(state, "twin_contexts", None)
    if store is None:
        with _stores_lock:
            store = getattr(state, "twin_contexts", None)
            if store is None:
                sessions = state.sessions

                def stored(url: str) -> dict[str, Any] | None:
                    m = re.search(r"/ngsi-ld/v1/jsonldContexts/([0-9a-f]{32})$", url)
                    with sessions() as s:
                        doc = service.stored_context(session=s, url=url)
                        if doc is None and m:
                            row = service.context(session=s, cid=m.group(1)) if m else None
                            doc = json.loads(row.body) if row is not None else None
                        return doc

                def keep(url: str, doc: dict[str, Any]) -> None:
                    with sessions() as s:
                        service.keep_context(session=s, url=url, body=doc)
                        s.commit()

                store = ContextStore(stored, keep, fetch=twin_settings().fetch_contexts)
                state.twin_contexts = store
    return store


def call_of(request: Request, inc: Incoming) -> service.Call:
    return service.Call(tenant=inc.tenant, resolver=contexts_of(request).resolver(inc.context))


# ------------------------------------------------------------------------------------------ answering


def _dumps(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def answer(call: service.Call, inc: Incoming, data: Any, *, status: int = 200,
           headers: dict[str, str] | None = None) -> Response:
    """A JSON answer: the @context as a Link header (application/json) or in the body (application/ld+json)."""
    h = dict(headers or {})
    if inc.tenant:
        h["NGSILD-Tenant"] = inc.tenant
    media = inc.accept
    if media == LD:
        ctx = call.resolver.context if call.resolver.context is not None else CORE_URL
        if isinstance(data, list):
            data = [{**d, "@context": ctx} if isinstance(d, dict) else d for d in data]
        elif isinstance(data, dict):
            data = {**data, "@context": ctx}
    elif media == JSON:
        h["Link"] = f'<{call.resolver.link}>; rel="{JSONLD_REL}"; type="application/ld+json"'
    return Response(_dumps(data), status_code=status, media_type=media, headers=h)


def no_content(inc: Incoming, status: int = 204, headers: dict[str, str] | None = None) -> Response:
    h = dict(headers or {})
    if inc.tenant:
        h["NGSILD-Tenant"] = inc.tenant
    return Response(status_code=status, headers=h)


def update_result(call: service.Call, inc: Incoming, out: service.Outcome) -> Response:
    if not out.not_updated:
        return no_content(inc)
    r = call.resolver
    return answer(call, inc, {"updated": [r.compact(a) for a in out.updated],
                              "notUpdated": [{"attributeName": r.compact(a), "reason": why}
                                             for a, why in out.not_updated]}, status=207)


def batch_answer(call: service.Call, inc: Incoming, res: service.BatchResult, *, created_status: int | None) -> Response:
    if not res.errors:
        if created_status == 201 and res.created:
            return answer(call, inc, res.created, status=201)
        return no_content(inc)
    return answer(call, inc, {"success": res.success,
                              "errors": [{"entityId": eid, "error": err.body()} for eid, err in res.errors]},
                  status=207)


# ------------------------------------------------------------------------------------------ parameters


def _options(request: Request) -> set[str]:
    opts: set[str] = set()
    for v in request.query_params.getlist("options"):
        opts.update(o.strip() for o in v.split(",") if o.strip())
    known = {"keyValues", "simplified", "concise", "normalized", "sysAttrs", "noOverwrite", "replace", "update",
             "temporalValues", "aggregatedValues", "noEntityIfNoValue", "deleteAll"}
    unknown = opts - known
    if unknown:
        raise BadRequestData(f"unknown options {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
    return opts


def _format(request: Request, opts: set[str]) -> str:
    fmt = request.query_params.get("format")
    if fmt is not None and fmt not in ("keyValues", "simplified", "concise", "normalized"):
        raise BadRequestData("format must be normalized, concise, keyValues or simplified")
    chosen = {fmt} if fmt else opts & {"keyValues", "simplified", "concise", "normalized"}
    if len(chosen) > 1 and not chosen <= {"keyValues", "simplified"}:
        raise BadRequestData("options may name only one of normalized, concise and keyValues")
    if chosen & {"keyValues", "simplified"}:
        return "keyValues"
    return "concise" if "concise" in chosen else "normalized"


def _names(request: Request, name: str) -> list[str] | None:
    values = request.query_params.getlist(name)
    if not values:
        return None
    out = [n.strip() for v in values for n in v.split(",") if n.strip()]
    if not out:
        raise BadRequestData(f"{name} must list at least one name")
    return out


def _int(request: Request, name: str, default: int | None, *, low: int = 0, high: int = 10**9) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"\d{1,10}", raw.strip()):
        raise BadRequestData(f"{name} must be a whole number, not {raw[:20]!r}")
    v = int(raw)
    if not low <= v <= high:
        raise BadRequestData(f"{name} must be between {low} and {high}")
    return v


def _bool(request: Request, name: str) -> bool:
    raw = request.query_params.get(name)
    if raw is None:
        return False
    if raw.lower() not in ("true", "false"):
        raise BadRequestData(f"{name} must be true or false")
    return raw.lower() == "true"


def _projection(request: Request, call: service.Call) -> tuple[set[str] | None, set[str] | None]:
    pick, omit = _names(request, "pick"), _names(request, "omit")
    if pick and omit:
        raise BadRequestData("pick and omit cannot be used together")
    return (set(pick) if pick else None), (set(omit) if omit else None)


def _query(request: Request, call: service.Call, body: dict[str, Any] | None = None) -> service.Query:
    """An entity query from the URL's parameters (or a POST /entityOperations/query body)."""
    from citybase.twin import geoquery
    from citybase.twin import query as ql

    r = call.resolver
    p: dict[str, Any] = dict(request.query_params)
    if body is not None:
        p = _query_body(body)
    max_limit = twin_settings().max_limit
    q = service.Query()
    try:
        if p.get("type"):
            q.types = ql.parse_type_query(p["type"], r.expand)
        if p.get("id"):
            q.ids = [service.check_uri(i.strip(), "id") for i in p["id"].split(",") if i.strip()]
        if p.get("idPattern"):
            q.id_pattern = service.check_id_pattern(p["idPattern"])
        attrs = p.get("attrs")
        if attrs:
            q.attrs = [r.expand(service.check_name(a.strip())) for a in attrs.split(",") if a.strip()]
        if p.get("q"):
            q.q = ql.parse_q(p["q"], r.expand)
        if p.get("scopeQ"):
            q.scope = ql.parse_scope_query(p["scopeQ"])
        if p.get("georel") or p.get("geometry") or p.get("coordinates"):
            if not (p.get("georel") and p.get("geometry") and p.get("coordinates")):
                raise BadRequestData("a geo-query needs georel, geometry and coordinates together")
            q.geo = geoquery.parse_geoq(p["georel"], p["geometry"], p["coordinates"], p.get("geoproperty"), r.expand)
    except ValueError as exc:  # QSyntaxError, GeoQSyntaxError
        raise BadRequestData(str(exc)) from None
    q.limit = _int(request, "limit", 20, high=max_limit) if body is None else int(p.get("limit", 20))
    if q.limit > max_limit:
        raise BadRequestData(f"limit may be at most {max_limit}")
    q.offset = _int(request, "offset", 0) if body is None else int(p.get("offset", 0))
    q.count = _bool(request, "count")
    return q


def _query_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or body.get("type") != "Query":
        raise BadRequestData('the body must be a Query: {"type": "Query", "entities": [...], "attrs": [...], "q": ...}')
    p: dict[str, Any] = {}
    ents = body.get("entities") or []
    if ents:
        if not isinstance(ents, list) or not all(isinstance(e, dict) for e in ents):
            raise BadRequestData("entities must be a list of {type, id, idPattern}")
        types = [e["type"] for e in ents if e.get("type")]
        if types:
            p["type"] = ",".join(types)
        ids = [e["id"] for e in ents if e.get("id")]
        if ids:
            p["id"] = ",".join(ids)
        pats = [e["idPattern"] for e in ents if e.get("idPattern")]
        if pats:
            p["idPattern"] = "|".join(f"(?:{x})" for x in pats)
    if body.get("attrs"):
        p["attrs"] = ",".join(body["attrs"]) if isinstance(body["attrs"], list) else str(body["attrs"])
    if body.get("q"):
        p["q"] = str(body["q"])
    if body.get("scopeQ"):
        p["scopeQ"] = str(body["scopeQ"])
    g = body.get("geoQ")
    if g:
        if not isinstance(g, dict):
            raise BadRequestData("geoQ must be an object {geometry, coordinates, georel, geoproperty}")
        p["georel"], p["geometry"] = g.get("georel"), g.get("geometry")
        coords = g.get("coordinates")
        p["coordinates"] = json.dumps(coords) if not isinstance(coords, str) else coords
        if g.get("geoproperty"):
            p["geoproperty"] = g["geoproperty"]
    return p


def _shown(call: service.Call, request: Request, docs: list[dict[str, Any]], query: service.Query | None,
           inc: Incoming) -> Any:
    from citybase.twin.representation import compact_entity

    opts = _options(request)
    fmt = _format(request, opts)
    pick, omit = _projection(request, call)
    lang = request.query_params.get("lang")
    attrs = query.attrs if query is not None else None
    return [compact_entity(d, call.resolver, fmt=fmt, sys_attrs="sysAttrs" in opts, attrs=attrs, lang=lang,
                           pick=pick, omit=omit) for d in docs]


def _geojson(call: service.Call, request: Request, shown: list[dict[str, Any]], docs: list[dict[str, Any]]) -> Any:
    """A FeatureCollection: each entity a Feature with its geometry from ``geometryProperty`` (location)."""
    prop = request.query_params.get("geometryProperty", "location")
    iri = call.resolver.expand(prop)
    features = []
    for s, d in zip(shown, docs, strict=True):
        inst = (d["attrs"].get(iri) or [None])[0]
        geometry = inst.get("value") if inst and inst.get("type") == "GeoProperty" else None
        props = {k: v for k, v in s.items() if k not in ("id",)}
        features.append({"id": d["id"], "type": "Feature", "geometry": geometry, "properties": props})
    return features


# ------------------------------------------------------------------------------------------ entities


@router.post("/entities", status_code=201, summary="Create an entity")
def create_entity(request: Request, _: Any = Depends(WRITE), inc: Incoming = Depends(read_body),
                  session: Session = Depends(get_session, scope="function")) -> Response:
    call = call_of(request, inc)
    eid = service.create_entity(session=session, call=call, body=inc.body)
    return no_content(inc, 201, {"Location": f"{PREFIX}/entities/{quote(eid, safe=':/')}"})


@router.get("/entities", summary="Query entities (type, id, idPattern, attrs, q, geoQ, scopeQ, pick/omit, count)")
def query_entities(request: Request, _: Any = Depends(READ), inc: Incoming = Depends(read_geo_query),
                   session: Session = Depends(get_session, scope="function")) -> Response:
    call = call_of(request, inc)
    query = _query(request, call)
    docs, total = service.query_entities(session=session, call=call, query=query)
    shown = _shown(call, request, docs, query, inc)
    headers = {"NGSILD-Results-Count": str(total)} if total is not None else {}
    if inc.accept == GEO:
        body = {"type": "FeatureCollection", "features": _geojson(call, request, shown, docs)}
        return answer(call, inc, body, headers=headers)
    return answer(call, inc, shown, headers=headers)


@router.get("/entities/{entity_id:path}", summary="Retrieve an entity")
def get_entity(entity_id: str, request: Request, _: Any = Depends(READ), inc: Incoming = Depends(read_geo_query),
               session: Session = Depends(get_session, scope="function")) -> Response:
    if not entity_id:  # …/entities/?type=… : the query, with a trailing slash
        return query_entities(request, _, inc, session)
    if entity_id.startswith("/"):
        raise BadRequestData("the entity id in the path is empty")
    if "/attrs" in entity_id:  # a GET under /attrs is not an operation of the standard
        raise ResourceNotFound("there is no GET operation on an entity's attributes; GET the entity with attrs=")
    call = call_of(request, inc)
    doc = service.get_entity(session=session, call=call, entity_id=entity_id)
    attrs = _names(request, "attrs")
    query = service.Query(attrs=[call.resolver.expand(a) for a in attrs]) if attrs else None
    shown = _shown(call, request, [doc], query, inc)[0]
    if inc.accept == GEO:
        return answer(call, inc, _geojson(call, request, [shown], [doc])[0])
    return answer(call, inc, shown)


@router.put("/entities/{entity_id}", status_code=204, summary="Replace an entity")
def replace_entity(entity_id: str, request: Request, _: Any = Depends(WRITE), inc: Incoming = Depends(read_body),
                   session: Session = Depends(get_session, scope="function")) -> Response:
    service.replace_entity(session=session, call=call_of(request, inc), entity_id=entity_id, body=inc.body)
    return no_content(inc)


@router.patch("/entities/{entity_id}", status_code=204, summary="Merge-patch an entity")
def merge_entity(entity_id: str, request: Request, _: Any = Depends(WRITE), inc: Incoming = Depends(read_merge),
                 session: Session = Depends(get_session, scope="function")) -> Response:
    service.merge_entity(session=session, call=call_of(request, inc), entity_id=entity_id, body=inc.body)
    return no_content(inc)


@router.delete("/entities/{entity_id}", status_code=204, summary="Delete an entity")
def delete_entity(entity_id: str, request: Request, _: Any = Depends(WRITE), inc: Incoming = Depends(read_query),
                  session: Session = Depends(get_session, scope="function")) -> Response:
    service.delete_entity(session=session, call=call_of(request, inc), entity_id=entity_id)
    return no_content(inc)


@router.post("/entities/{entity_id}/attrs", summary="Append attributes (options=noOverwrite keeps existing ones)")
def append_attrs(entity_id: str, request: Request, _: Any = Depends(WRITE), inc: Incoming = Depends(read_body),
                 session: Session = Depends(get_session, scope="function")) -> Response:
    call = call_of(request, inc)
    out = service.append_attributes(session=session, call=call, entity_id=entity_id, body=inc.body,
                                    no_overwrite="noOverwrite" in _options(request))
    return update_result(call, inc, out)


@router.patch("/entities/{entity_id}/attrs", summary="Update existing attributes")
def update_attrs(entity_id: str, request: Request, _: Any = Depends(WRITE), inc: Incoming = Depends(read_body),
                 session: Session = Depends(get_session, scope="function")) -> Response:
    call = call_of(request, inc)
    out = service.update_attributes(session=session, call=call, entity_id=entity_id, body=inc.body)
    return update_result(call, inc, out)


@router.patch("/entities/{entity_id}/attrs/{attr}", status_code=204, summary="Partially update one attribute")
def patch_attr(entity_id: str, attr: str, request: Request, _: Any = Depends(WRITE), inc: Incoming = Depends(read_body),
               session: Session = Depends(get_session, scope="function")) -> Response:
    service.partial_update_attribute(session=session, call=call_of(request, inc), entity_id=entity_id, attr=attr,
                                     body=inc.body)
    return no_content(inc)


@router.put("/entities/{entity_id}/attrs/{attr}", status_code=204, summary="Replace one attribute")
def put_attr(entity_id: str, attr: str, request: Request, _: Any = Depends(WRITE), inc: Incoming = Depends(read_body),
             session: Session = Depends(get_session, scope="function")) -> Response:
    service.replace_attribute(session=session, call=call_of(request, inc), entity_id=entity_id, attr=attr,
                              body=inc.body)
    return no_content(inc)


@router.delete("/entities/{entity_id}/attrs/{attr}", status_code=204,
               summary="Delete one attribute (datasetId= one instance, deleteAll=true all)")
def delete_attr(entity_id: str, attr: str, request: Request, _: Any = Depends(WRITE),
                inc: Incoming = Depends(read_query), session: Session = Depends(get_session, scope="function")) -> Response:
    service.delete_attribute(session=session, call=call_of(request, inc), entity_id=entity_id, attr=attr,
                             dataset_id=request.query_params.get("datasetId"), delete_all=_bool(request, "deleteAll"))
    return no_content(inc)


# ------------------------------------------------------------------------------------------ batches


@router.post("/entityOperations/create", summary="Batch create")
def batch_create(request: Request, _: Any = Depends(WRITE), inc: Incoming = Depends(read_batch),
                 session: Session = Depends(get_session, scope="function")) -> Response:
    call = call_of(request, inc)
    return batch_answer(call, inc, service.batch_create(session=session, call=call, items=inc.body), created_status=201)


@router.post("/entityOperations/upsert", summary="Batch upsert (options=replace, the default, or update)")
def batch_upsert(request: Request, _: Any = Depends(WRITE), inc: Incoming = Depends(read_batch),
                 session: Session = Depends(get_session, scope="function")) -> Response:
    call = call_of(request, inc)
    opts = _options(request)
    res = service.batch_upsert(session=session, call=call, items=inc.body, update_only="update" in opts)
    return batch_answer(call, inc, res, created_status=201)


@router.post("/entityOperations/update", summary="Batch update (options=noOverwrite)")
def batch_update(request: Request, _: Any = Depends(WRITE), inc: Incoming = Depends(read_batch),
                 session: Session = Depends(get_session, scope="function")) -> Response:
    call = call_of(request, inc)
    res = service.batch_update(session=session, call=call, items=inc.body,
                               no_overwrite="noOverwrite" in _options(request))
    return batch_answer(call, inc, res, created_status=None)


@router.post("/entityOperations/delete", summary="Batch delete")
def batch_delete(request: Request, _: Any = Depends(WRITE), inc: Incoming = Depends(read_batch),
                 session: Session = Depends(get_session, scope="function")) -> Response:
    call = call_of(request, inc)
    return batch_answer(call, inc, service.batch_delete(session=session, call=call, items=inc.body), created_status=None)


@router.post("/entityOperations/merge", summary="Batch merge (merge-patch of each entity)")
def batch_merge(request: Request, _: Any = Depends(WRITE), inc: Incoming = Depends(read_batch),
                session: Session = Depends(get_session, scope="function")) -> Response:
    call = call_of(request, inc)
    return batch_answer(call, inc, service.batch_merge(session=session, call=call, items=inc.body), created_status=None)


@router.post("/entityOperations/query", summary="Query entities with a Query body")
def batch_query(request: Request, _: Any = Depends(READ), inc: Incoming = Depends(read_body),
                session: Session = Depends(get_session, scope="function")) -> Response:
    call = call_of(request, inc)
    query = _query(request, call, body=inc.body)
    docs, total = service.query_entities(session=session, call=call, query=query)
    headers = {"NGSILD-Results-Count": str(total)} if total is not None else {}
    return answer(call, inc, _shown(call, request, docs, query, inc), headers=headers)


# ------------------------------------------------------------------------------------------ discovery


@router.get("/types", summary="Entity types (details=true: with their attributes)")
def types(request: Request, _: Any = Depends(READ), inc: Incoming = Depends(read_query),
          session: Session = Depends(get_session, scope="function")) -> Response:
    call = call_of(request, inc)
    return answer(call, inc, service.entity_types(session=session, call=call, details=_bool(request, "details")))


@router.get("/types/{name:path}", summary="One entity type")
def type_info(name: str, request: Request, _: Any = Depends(READ), inc: Incoming = Depends(read_query),
              session: Session = Depends(get_session, scope="function")) -> Response:
    call = call_of(request, inc)
    return answer(call, inc, service.entity_type(session=session, call=call, name=name))


@router.get("/attributes", summary="Attributes (details=true: with their types)")
def attributes(request: Request, _: Any = Depends(READ), inc: Incoming = Depends(read_query),
               session: Session = Depends(get_session, scope="function")) -> Response:
    call = call_of(request, inc)
    return answer(call, inc, service.attributes(session=session, call=call, details=_bool(request, "details")))


@router.get("/attributes/{name:path}", summary="One attribute")
def attribute_info(name: str, request: Request, _: Any = Depends(READ), inc: Incoming = Depends(read_query),
                   session: Session = Depends(get_session, scope="function")) -> Response:
    call = call_of(request, inc)
    return answer(call, inc, service.attribute(session=session, call=call, name=name))


# ------------------------------------------------------------------------------------------ temporal


def _time_query(request: Request, call: service.Call) -> service.TimeQuery:
    from citybase.twin.representation import parse_time

    p = request.query_params
    tq = service.TimeQuery()
    rel = p.get("timerel")
    if rel is not None:
        if rel not in ("before", "after", "between"):
            raise BadRequestData("timerel must be before, after or between")
        if not p.get("timeAt"):
            raise BadRequestData(f"timerel={rel} needs timeAt")
        tq.timerel, tq.time_at = rel, parse_time(p["timeAt"], "timeAt")
        if rel == "between":
            if not p.get("endTimeAt"):
                raise BadRequestData("timerel=between needs endTimeAt")
            tq.end_time_at = parse_time(p["endTimeAt"], "endTimeAt")
            if tq.end_time_at <= tq.time_at:
                raise BadRequestData("endTimeAt must be after timeAt")
    elif p.get("timeAt") or p.get("endTimeAt"):
        raise BadRequestData("timeAt and endTimeAt need timerel")
    prop = p.get("timeproperty", "observedAt")
    if prop not in ("observedAt", "modifiedAt", "createdAt"):
        raise BadRequestData("timeproperty must be observedAt, modifiedAt or createdAt")
    tq.timeproperty = prop
    tq.last_n = _int(request, "lastN", None, low=1, high=100_000)
    return tq


@router.post("/temporal/entities", summary="Create or add to a temporal entity")
def temporal_create(request: Request, _: Any = Depends(WRITE), inc: Incoming = Depends(read_body),
                    session: Session = Depends(get_session, scope="function")) -> Response:
    call = call_of(request, inc)
    created = service.create_temporal(session=session, call=call, body=inc.body)
    eid = inc.body["id"]
    return no_content(inc, 201 if created else 204,
                      {"Location": f"{PREFIX}/temporal/entities/{quote(eid, safe=':/')}"} if created else None)


@router.get("/temporal/entities", summary="Query temporal evolution (timerel, lastN, temporalValues, aggregation)")
def temporal_query(request: Request, _: Any = Depends(READ), inc: Incoming = Depends(read_query),
                   session: Session = Depends(get_session, scope="function")) -> Response:
    call = call_of(request, inc)
    query = _query(request, call)
    tq = _time_query(request, call)
    ids = service.temporal_candidates(session=session, call=call, query=query, tq=tq)
    total = len(ids)
    out = []
    for eid in ids[query.offset:query.offset + query.limit]:
        ident, rows = service.temporal_entity(session=session, call=call, entity_id=eid, attrs=query.attrs, tq=tq)
        out.append(render_temporal(ident, rows, call.resolver, request))
    headers = {"NGSILD-Results-Count": str(total)} if query.count else {}
    return answer(call, inc, out, headers=headers)


@router.get("/temporal/entities/{entity_id}", summary="The temporal evolution of an entity")
def temporal_get(entity_id: str, request: Request, _: Any = Depends(READ), inc: Incoming = Depends(read_query),
                 session: Session = Depends(get_session, scope="function")) -> Response:
    call = call_of(request, inc)
    attrs = _names(request, "attrs")
    tq = _time_query(request, call)
    ds = _names(request, "datasetId")
    ident, rows = service.temporal_entity(session=session, call=call, entity_id=entity_id,
                                          attrs=[call.resolver.expand(a) for a in attrs] if attrs else None, tq=tq,
                                          dataset_ids=ds)
    return answer(call, inc, render_temporal(ident, rows, call.resolver, request))


@router.delete("/temporal/entities/{entity_id}", status_code=204, summary="Delete a temporal entity")
def temporal_delete(entity_id: str, request: Request, _: Any = Depends(WRITE), inc: Incoming = Depends(read_query),
                    session: Session = Depends(get_session, scope="function")) -> Response:
    service.delete_temporal(session=session, call=call_of(request, inc), entity_id=entity_id)
    return no_content(inc)


@router.post("/temporal/entities/{entity_id}/attrs", status_code=204, summary="Add attribute instances")
def temporal_append(entity_id: str, request: Request, _: Any = Depends(WRITE), inc: Incoming = Depends(read_body),
                    session: Session = Depends(get_session, scope="function")) -> Response:
    call = call_of(request, inc)
    if not isinstance(inc.body, dict):
        raise BadRequestData("the body must be a JSON object of attributes")
    service.get_entity(session=session, call=call, entity_id=entity_id)  # ResourceNotFound when there is none
    service.create_temporal(session=session, call=call, body={**inc.body, "id": entity_id})
    return no_content(inc)


@router.delete("/temporal/entities/{entity_id}/attrs/{attr}", status_code=204, summary="Delete an attribute's history")
def temporal_delete_attr(entity_id: str, attr: str, request: Request, _: Any = Depends(WRITE),
                         inc: Incoming = Depends(read_query), session: Session = Depends(get_session, scope="function")) -> Response:
    service.delete_temporal_attribute(session=session, call=call_of(request, inc), entity_id=entity_id, attr=attr,
                                      dataset_id=request.query_params.get("datasetId"),
                                      delete_all=_bool(request, "deleteAll") or "datasetId" not in request.query_params)
    return no_content(inc)


@router.patch("/temporal/entities/{entity_id}/attrs/{attr}/{instance_id}", status_code=204,
              summary="Modify one attribute instance")
def temporal_patch_instance(entity_id: str, attr: str, instance_id: str, request: Request,
                            _: Any = Depends(WRITE), inc: Incoming = Depends(read_body),
                            session: Session = Depends(get_session, scope="function")) -> Response:
    service.update_temporal_instance(session=session, call=call_of(request, inc), entity_id=entity_id, attr=attr,
                                     instance_id=instance_id, body=inc.body)
    return no_content(inc)


@router.delete("/temporal/entities/{entity_id}/attrs/{attr}/{instance_id}", status_code=204,
               summary="Delete one attribute instance")
def temporal_delete_instance(entity_id: str, attr: str, instance_id: str, request: Request,
                             _: Any = Depends(WRITE), inc: Incoming = Depends(read_query),
                             session: Session = Depends(get_session, scope="function")) -> Response:
    service.delete_temporal_instance(session=session, call=call_of(request, inc), entity_id=entity_id, attr=attr,
                                     instance_id=instance_id)
    return no_content(inc)


@router.post("/temporalEntityOperations/query", summary="Query temporal evolution with a Query body")
def temporal_batch_query(request: Request, _: Any = Depends(READ), inc: Incoming = Depends(read_body),
                         session: Session = Depends(get_session, scope="function")) -> Response:
    call = call_of(request, inc)
    query = _query(request, call, body=inc.body)
    tq = _time_query(request, call)
    temporal = inc.body.get("temporalQ") if isinstance(inc.body, dict) else None
    if isinstance(temporal, dict):
        from citybase.twin.representation import parse_time

        if temporal.get("timerel"):
            tq.timerel = temporal["timerel"]
            tq.time_at = parse_time(temporal.get("timeAt", ""), "timeAt")
            if temporal.get("endTimeAt"):
                tq.end_time_at = parse_time(temporal["endTimeAt"], "endTimeAt")
    ids = service.temporal_candidates(session=session, call=call, query=query, tq=tq)
    out = []
    for eid in ids[query.offset:query.offset + query.limit]:
        ident, rows = service.temporal_entity(session=session, call=call, entity_id=eid, attrs=query.attrs, tq=tq)
        out.append(render_temporal(ident, rows, call.resolver, request))
    return answer(call, inc, out)


# ------------------------------------------------------------------------------------------ @contexts


def _context_info(row: Any) -> dict[str, Any]:
    from citybase.twin.representation import iso

    return {"id": row.url, "url": row.url, "localId": row.id, "kind": row.kind, "createdAt": iso(row.created_at),
            "lastUsage": iso(row.last_used_at) if row.last_used_at else None, "numberOfHits": row.hits}


CORE_INFO = {"id": CORE_URL, "url": CORE_URL, "localId": "core", "kind": "Cached", "numberOfHits": 0}
# the contexts shipped in the package (citybase's city terms), listed and served like the core one
PACKAGED_INFO = {url: {"id": url, "url": url, "localId": lid, "kind": "Cached", "numberOfHits": 0}
                 for url, (lid, _) in PACKAGED.items()}


@router.get("/jsonldContexts", summary="The @contexts kept here (details=true, kind=Hosted|Cached|ImplicitlyCreated)")
def list_contexts(request: Request, _: Any = Depends(READ), inc: Incoming = Depends(read_query),
                  session: Session = Depends(get_session, scope="function")) -> Response:
    kind = request.query_params.get("kind")
    if kind is not None and kind not in ("Hosted", "Cached", "ImplicitlyCreated"):
        raise BadRequestData("kind must be Hosted, Cached or ImplicitlyCreated")
    rows = service.contexts(session=session, kind=kind)
    details = _bool(request, "details")
    infos = ([CORE_INFO, *PACKAGED_INFO.values()] if kind in (None, "Cached") else []) + [_context_info(r) for r in rows]
    body = infos if details else [i["url"] for i in infos]
    return Response(_dumps(body), media_type=JSON)


@router.post("/jsonldContexts", status_code=201, summary="Host an @context here")
def add_context(request: Request, _: Any = Depends(WRITE), inc: Incoming = Depends(read_document),
                session: Session = Depends(get_session, scope="function")) -> Response:
    url = service.host_context(session=session, body=inc.body, base_url=str(request.base_url))
    return Response(status_code=201, headers={"Location": url})


@router.get("/jsonldContexts/{cid:path}", summary="An @context kept here (details=true: its record)")
def get_context(cid: str, request: Request, _: Any = Depends(READ),
                session: Session = Depends(get_session, scope="function")) -> Response:
    details = _bool(request, "details")
    if cid in ("core", CORE_URL) or cid in CORE_URLS:
        return Response(_dumps(CORE_INFO if details else core_document()), media_type=LD if not details else JSON)
    if (url := packaged_url(cid)) is not None:
        return Response(_dumps(PACKAGED_INFO[url] if details else packaged_document(url)),
                        media_type=LD if not details else JSON)
    row = service.context(session=session, cid=cid)
    if details:
        return Response(_dumps(_context_info(row)), media_type=JSON)
    return Response(row.body.encode("utf-8"), media_type=LD)


@router.delete("/jsonldContexts/{cid:path}", status_code=204, summary="Delete an @context (reload=true: fetch anew)")
def delete_context(cid: str, request: Request, _: Any = Depends(WRITE),
                   session: Session = Depends(get_session, scope="function")) -> Response:
    reload = _bool(request, "reload")
    if cid in ("core", CORE_URL) or cid in CORE_URLS:
        if not reload:
            raise BadRequestData("the core @context cannot be deleted; reload=true reloads it")
        return Response(status_code=204)
    if packaged_url(cid) is not None:
        if not reload:
            raise BadRequestData(f"the @context {cid} is shipped with citybase and cannot be deleted; reload=true "
                                 "reloads it")
        return Response(status_code=204)
    url = service.delete_context(session=session, cid=cid)
    contexts_of(request).forget(url)
    if reload:
        contexts_of(request).document(url)
    return Response(status_code=204)


def _also_with_a_trailing_slash() -> None:
    """Answer ``…/entities/`` like ``…/entities``: NGSI-LD clients (the ETSI suite among them) build URLs with
    a trailing slash, and a 307 redirect would make every such call two."""
    for route in list(router.routes):
        if isinstance(route, APIRoute) and not route.path.endswith("/"):
            router.add_api_route(route.path[len(PREFIX):] + "/", route.endpoint, methods=list(route.methods),
                                 status_code=route.status_code, include_in_schema=False, summary=route.summary)


_also_with_a_trailing_slash()


@router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
def no_such_operation(rest: str, _: Any = Depends(READ)) -> Response:
    """What no route above answers: an empty id in the path is the client's mistake (400), the rest 404."""
    if rest.startswith("/") or "//" in rest or rest.rstrip("/") in ("entities", "temporal/entities") and rest.endswith("/"):
        raise BadRequestData("an id in the path is empty; put the entity id (or attribute name) between the slashes")
    raise ResourceNotFound(f"there is no NGSI-LD operation at {PREFIX}/{rest[:200]} here")
