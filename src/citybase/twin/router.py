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
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from citybase.core.errors import CitybaseError, Unauthenticated
from citybase.core.errors import Forbidden as CoreForbidden
from citybase.core.i18n import render
from citybase.kernel import faults
from citybase.security.deps import AnsweringRoute, allow_open, get_session
from citybase.security.roles import STAFF
from citybase.twin import service
from citybase.twin.errors import (
    BadRequestData,
    Forbidden,
    InternalError,
    InvalidRequest,
    LdContextNotAvailable,
    NgsiError,
    NonexistentTenant,
    NotAcceptable,
    OperationNotSupported,
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
from citybase.twin.representation import links, load_linked, with_linked
from citybase.twin.settings import twin_settings
from citybase.twin.temporal import Page, check_request, paginate, render_temporal

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


class NgsiRoute(AnsweringRoute):
    """A route whose every failure, dependencies included, is answered as an NGSI-LD error."""

    def answer(self, request: Request, exc: Exception) -> Response:
        return error_response(exc)


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


SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _check_body(text: str, data: Any) -> None:
    if "\\u0000" in text or "\x00" in text:
        raise BadRequestData("the body holds a NUL character (\\u0000), which cannot be stored")
    if not SURROGATE_ESCAPE.search(text):  # decoded UTF-8 holds none: only an escape can make one
        return
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
    raw = await request.body()
    if ctype not in allowed:
        if not ctype and len(raw) <= MAX_BODY:
            # no Content-Type: the body may be examined (RFC 9110 8.3); one that is not JSON at all is the
            # first thing wrong with the request, a JSON one still needs its type named
            try:
                json.loads(raw.decode("utf-8"), parse_constant=_no_nan)
            except (UnicodeDecodeError, ValueError, RecursionError) as exc:
                raise InvalidRequest(f"the body is not valid JSON ({str(exc)[:120]}), and it has no Content-Type: "
                                     f"send a JSON document as {' or '.join(allowed)}") from None
        raise UnsupportedMediaType(f"send the body as {' or '.join(allowed)}, not {ctype[:60] or 'no Content-Type'}")
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
        if not isinstance(data, dict):  # not an object where one is expected: the request itself is wrong
            raise InvalidRequest(f"the body must be a JSON object, not {type(data).__name__}")
        if "@context" not in data:
            raise BadRequestData("a body sent as application/ld+json must carry an @context")
        context = data["@context"]
    elif isinstance(data, dict) and "@context" in data:
        raise BadRequestData("a body sent as application/json must not carry @context: send it in a Link header, "
                             "or send the body as application/ld+json")
    return Incoming(tenant, data, context, accept)


async def read_body(request: Request) -> Incoming:
    return await _read(request, body=True)


async def read_geo_body(request: Request) -> Incoming:
    return await _read(request, body=True, geo=True)


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
                        if doc is None and m:  # hosted here, under another host name
                            try:
                                doc = json.loads(service.context(session=s, cid=m.group(1)).body)
                            except ResourceNotFound:
                                doc = None
                        return doc

                def keep(url: str, doc: dict[str, Any]) -> None:
                    with sessions() as s:
                        service.keep_context(session=s, url=url, body=doc)
                        s.commit()

                store = ContextStore(stored, keep, fetch=twin_settings().fetch_contexts)
                state.twin_contexts = store
    return store


def _absolute(ctx: Any, base: str) -> Any:
    """A context URL relative to this server (``/ngsi-ld/v1/jsonldContexts/…``, as our Location headers give
    them) resolved against the request's base, as JSON-LD resolves relative context IRIs."""
    if isinstance(ctx, str) and ctx.startswith("/"):
        return base.rstrip("/") + ctx
    if isinstance(ctx, list):
        return [_absolute(c, base) for c in ctx]
    return ctx


def call_of(request: Request, inc: Incoming) -> service.Call:
    context = _absolute(inc.context, str(request.base_url))
    return service.Call(tenant=inc.tenant, resolver=contexts_of(request).resolver(context))


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
        link = f'<{call.resolver.link}>; rel="{JSONLD_REL}"; type="application/ld+json"'
        h["Link"] = f"{h['Link']}, {link}" if h.get("Link") else link  # after any paging links
    elif media == GEO and isinstance(data, dict):  # GeoJSON carries its @context in the body (CIM 009 §4.5.16)
        data = {**data, "@context": call.resolver.context if call.resolver.context is not None else CORE_URL}
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


def _refused(inc: Incoming, res: service.BatchResult) -> Response:
    body = {"success": [], "errors": [{"entityId": eid, "error": err.body()} for eid, err in res.errors]}
    return Response(_dumps(body), status_code=207, media_type=JSON,
                    headers={"NGSILD-Tenant": inc.tenant} if inc.tenant else None)


def batch_call(request: Request, inc: Incoming) -> tuple[service.Call | None, service.BatchResult | None]:
    """The call of a batch, or — when its @context cannot be had — every entity refused with that error (207)."""
    try:
        return call_of(request, inc), None
    except (LdContextNotAvailable, BadRequestData) as exc:
        items = inc.body if isinstance(inc.body, list) else []
        res = service.BatchResult()
        for item in items:
            eid = item.get("id") if isinstance(item, dict | service.Refused) else item if isinstance(item, str) else None
            res.errors.append((eid if isinstance(eid, str) else None, exc))
        return None, res


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
        raise InvalidRequest(f"unknown options {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
    return opts


def _format(request: Request, opts: set[str]) -> str:
    fmt = request.query_params.get("format")
    if fmt is not None and fmt not in ("keyValues", "simplified", "concise", "normalized"):
        raise InvalidRequest("format must be normalized, concise, keyValues or simplified")
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


def _query(request: Request, call: service.Call, body: dict[str, Any] | None = None) -> service.Query:
    """An entity query from the URL's parameters (or a POST /entityOperations/query body)."""
    from citybase.twin import geoquery
    from citybase.twin import query as ql

    r = call.resolver
    p: dict[str, Any] = dict(request.query_params)
    if body is not None:
        p = _query_body(body)
    elif p.get("geoQ"):  # some clients (ngsildclient) pack the geo-query into one parameter: georel=…&geometry=…
        from urllib.parse import parse_qsl

        for k, v in parse_qsl(p.pop("geoQ"), keep_blank_values=True):
            if k in ("georel", "geometry", "coordinates", "geoproperty"):
                p.setdefault(k, v)
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


ENTITY_PARAMS = frozenset({"attrs", "options", "format", "pick", "omit", "lang", "geometryProperty", "datasetId",
                           "join", "joinLevel", "local", "csf", "entityMap", "containedBy", "expandValues"})
QUERY_PARAMS = ENTITY_PARAMS | {"type", "id", "idPattern", "q", "georel", "geometry", "coordinates", "geoproperty",
                                "geoQ", "scopeQ", "limit", "offset", "count", "orderBy", "collect"}
TEMPORAL_PARAMS = QUERY_PARAMS | {"timerel", "timeAt", "endTimeAt", "timeproperty", "lastN", "aggrMethods",
                                  "aggrPeriodDuration"}
PROJECTION_NAME = re.compile(r"[A-Za-z_@][\w:.#/\-]*")


def _known_params(request: Request, allowed: frozenset[str]) -> None:
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise InvalidRequest(f"unknown query parameter(s) {', '.join(unknown)[:200]} for this operation")


Tree = dict[str, "Tree | None"]


def parse_projection(text: str, what: str) -> Tree:
    """A ``pick``/``omit`` expression (``a,b{c,d{e}}``) as a tree: each name -> the projection of the entity
    its Relationship links to (None: none given); a malformed one is BadRequestData."""
    tree, i = _projection_level(text, 0, what, 0)
    if i != len(text):
        raise BadRequestData(f"{what} closes a brace it never opened at position {i}")
    return tree


def _projection_level(text: str, i: int, what: str, depth: int) -> tuple[Tree, int]:
    out: Tree = {}
    while True:
        m = PROJECTION_NAME.match(text, i)
        if not m:
            raise BadRequestData(f"{what} has no attribute name at position {i}: {text[:80]!r}")
        name, i = m.group(0), m.end()
        sub = None
        if i < len(text) and text[i] == "{":
            sub, i = _projection_level(text, i + 1, what, depth + 1)
            if i >= len(text) or text[i] != "}":
                raise BadRequestData(f"{what} has an unclosed brace: {text[:80]!r}")
            i += 1
        out[name] = sub
        if i < len(text) and text[i] == ",":
            i += 1
            continue
        if i < len(text) and text[i] == "}" and depth > 0:
            return out, i
        if i < len(text):
            raise BadRequestData(f"{what} has an unexpected {text[i]!r} at position {i}")
        if depth > 0:
            raise BadRequestData(f"{what} has an unclosed brace: {text[:80]!r}")
        return out, i


class View:
    """How entities are shown, read from the request and checked before anything is looked up."""

    def __init__(self, request: Request, call: service.Call, *, allowed: frozenset[str] = ENTITY_PARAMS) -> None:
        _known_params(request, allowed)
        self.opts = _options(request)
        self.fmt = _format(request, self.opts)
        p = request.query_params
        if p.get("attrs") is not None and (p.get("pick") is not None or p.get("omit") is not None):
            raise BadRequestData("attrs cannot be combined with pick or omit (pick replaces attrs)")
        if p.get("pick") is not None and p.get("omit") is not None:
            raise BadRequestData("pick and omit cannot be used together")
        self.pick_tree = parse_projection(p["pick"], "pick") if p.get("pick") is not None else None
        self.omit_tree = parse_projection(p["omit"], "omit") if p.get("omit") is not None else None
        self.pick = set(self.pick_tree) if self.pick_tree else None
        self.omit = {k for k, v in self.omit_tree.items() if v is None} if self.omit_tree else None
        attrs = _names(request, "attrs")
        self.attrs = [call.resolver.expand(service.check_name(a)) for a in attrs] if attrs else None
        self.lang = p.get("lang")
        ds = _names(request, "datasetId")
        self.datasets = set(ds) if ds else None
        self.resolver = call.resolver
        self.join = p.get("join")
        if self.join not in (None, "inline", "flat", "@none"):
            raise BadRequestData("join must be inline, flat or @none")
        self.join_level = _int(request, "joinLevel", 1, low=1, high=10) or 1
        if self.attrs and any(a.startswith("@") for a in self.attrs):
            raise BadRequestData("attrs names id or type, which are not attributes")

    def show(self, docs: list[dict[str, Any]], attrs: list[str] | None = None,
             fetch: Callable[[list[str]], dict[str, dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
        """The entities as asked; with ``join`` and a ``fetch`` of entities by id, their linked entities
        inline (in an ``entity`` member of each Relationship) or flat (appended to the list)."""
        wanted = attrs if attrs is not None else self.attrs
        if self.pick:  # pick names attributes (and id, type): only those are looked at
            picked = [self.resolver.expand(n) for n in self.pick if n not in ("id", "type", "scope")]
            wanted = picked if wanted is None else [a for a in wanted if a in picked]
        shown = [self._one(d, wanted, self.pick_tree, self.omit_tree) for d in docs]
        if self.join in ("inline", "flat") and fetch is not None:
            return self._joined(docs, shown, fetch)
        return shown

    def _one(self, doc: dict[str, Any], wanted: list[str] | None, pick: Tree | None, omit: Tree | None) -> dict[str, Any]:
        from citybase.twin.representation import compact_entity

        if pick and wanted is None:
            wanted = [self.resolver.expand(n) for n in pick if n not in ("id", "type", "scope")]
        return compact_entity(self._datasets(doc), self.resolver, fmt=self.fmt, sys_attrs="sysAttrs" in self.opts,
                              attrs=wanted, lang=self.lang, pick=set(pick) if pick else None,
                              omit={k for k, v in omit.items() if v is None} if omit else None)

    def _joined(self, docs: list[dict[str, Any]], shown: list[dict[str, Any]],
                fetch: Callable[[list[str]], dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        known = load_linked(docs, self.join_level, fetch)
        if self.join == "flat":
            out, seen = list(shown), {d["id"] for d in docs}
            frontier = [(d, s, self.pick_tree, self.omit_tree) for d, s in zip(docs, shown, strict=True)]
            for _ in range(self.join_level):
                nxt = []
                for d, view, pick, omit in frontier:
                    for name, t in links(d):
                        if t in known and t not in seen and self.resolver.compact(name) in view:  # links shown only
                            seen.add(t)
                            sub_pick, sub_omit = _sub(pick, self.resolver.compact(name)), _sub(omit, self.resolver.compact(name))
                            linked = self._one(known[t], None, sub_pick, sub_omit)
                            out.append(linked)
                            nxt.append((known[t], linked, sub_pick, sub_omit))
                frontier = nxt
            return out
        return [self._inline(d, s, known, self.join_level, self.pick_tree, self.omit_tree)
                for d, s in zip(docs, shown, strict=True)]

    def _inline(self, doc: dict[str, Any], shown: dict[str, Any], known: dict[str, dict[str, Any]], depth: int,
                pick: Tree | None, omit: Tree | None) -> dict[str, Any]:
        if depth <= 0:
            return shown
        out = dict(shown)
        for iri, instances in doc["attrs"].items():
            name = self.resolver.compact(iri)
            if name not in out:
                continue
            sub_pick, sub_omit = _sub(pick, name), _sub(omit, name)
            for i, inst in enumerate(instances):
                target = inst.get("object") if inst.get("type") == "Relationship" else None
                if not isinstance(target, str) or target not in known:
                    continue
                linked = self._inline(known[target], self._one(known[target], None, sub_pick, sub_omit), known,
                                      depth - 1, sub_pick, sub_omit)
                out[name] = with_linked(out[name], i, linked, self.fmt)
        return out


    def _datasets(self, doc: dict[str, Any]) -> dict[str, Any]:
        if self.datasets is None:
            return doc
        keep = {a: [i for i in inst if i.get("datasetId", "@none") in self.datasets] for a, inst in doc["attrs"].items()}
        return {**doc, "attrs": {a: v for a, v in keep.items() if v}}


def _sub(tree: Tree | None, name: str) -> Tree | None:
    """The projection of the entity linked through ``name`` (none: it is shown whole)."""
    return tree.get(name) if tree else None


def _types_of_query(node: Any) -> set[str]:
    from citybase.twin import query as ql

    if node is None:
        return set()
    if isinstance(node, ql.TypeIs):
        return {node.iri}
    return {t for c in getattr(node, "children", ()) for t in _types_of_query(c)}


def _from_sources(session: Session, call: service.Call, request: Request, query: service.Query,
                  shown: list[dict[str, Any]], payload: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], int]:
    """The local answer merged with what each matching registered source answers for the same query, asked
    as the registration's ``operations`` allow: ``GET /entities`` (queryEntity) or ``POST
    /entityOperations/query`` (queryBatch), whichever the caller used if the source takes both."""
    from citybase.twin.sources import forward
    from citybase.twin.sources import service as sources

    regs = sources.matching(session=session, call=call, types=_types_of_query(query.types), ids=query.ids,
                            attrs=query.attrs)
    if not regs:
        return shown, 0
    before = {e.get("id") for e in shown}
    merged = shown
    for reg in regs:
        params = _narrowed(call, reg, list(request.query_params.multi_items()))
        link = call.resolver.link
        batch = forward.allows(reg.body, "queryBatch")
        plain = forward.allows(reg.body, "queryEntity")
        if payload is not None and batch or payload is None and not plain and batch:
            body = payload if payload is not None else forward.query_body(params, _registered_types(call, reg))
            got = forward.ask(reg.endpoint, "entityOperations/query", [], link=link, body=reg.body,
                              payload={k: v for k, v in body.items() if k != "@context"})
        elif plain:
            asked = params if payload is None else [*forward.query_params(payload), *params]
            got = forward.ask(reg.endpoint, "entities", asked, link=link, body=reg.body)
        else:
            continue
        merged = forward.merge(merged, [_registered_only(call, reg, e) for e in forward.entities_of(got)],
                               first=reg.mode in ("exclusive", "redirect"))
    return merged, len({e.get("id") for e in merged} - before)


def _narrowed(call: service.Call, reg: Any, params: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """An exclusive or redirect source is asked only for what it is registered for (§4.3.6.3): its entity ids
    and attribute names, where the query names none."""
    if reg.mode not in ("exclusive", "redirect"):
        return params
    have = {k for k, _ in params}
    items = reg.body["information"]
    ids = [e["id"] for item in items for e in item.get("entities") or () if "id" in e]
    names = [call.resolver.compact(n) for item in items for key in ("propertyNames", "relationshipNames")
             for n in item.get(key, ())]
    every_id = all("id" in e for item in items for e in item.get("entities") or [{}])
    extra = []
    if "id" not in have and ids and every_id:
        extra.append(("id", ",".join(dict.fromkeys(ids))))
    if "attrs" not in have and names and all(item.get("propertyNames") or item.get("relationshipNames")
                                             for item in items):
        extra.append(("attrs", ",".join(dict.fromkeys(names))))
    return [*params, *extra]


def _registered_only(call: service.Call, reg: Any, entity: dict[str, Any]) -> dict[str, Any]:
    """An exclusive or redirect source's entity with only the attributes it is registered for."""
    items = reg.body["information"]
    if reg.mode not in ("exclusive", "redirect") or not all(
            item.get("propertyNames") or item.get("relationshipNames") for item in items):
        return entity
    names = {call.resolver.compact(n) for item in items for key in ("propertyNames", "relationshipNames")
             for n in item.get(key, ())}
    return {k: v for k, v in entity.items() if k in names or k in ("id", "type", "scope", "@context")}


def _registered_types(call: service.Call, reg: Any, entity_id: str | None = None) -> list[str]:
    """The entity types a registration names (for an entity id: those of the entity infos that may hold it)."""
    out: list[str] = []
    for item in reg.body["information"]:
        for e in item.get("entities") or ():
            if entity_id is not None and ("id" in e and e["id"] != entity_id or "idPattern" in e and not
                                          re.fullmatch(e["idPattern"], entity_id)):
                continue
            out.extend(call.resolver.compact(t) for t in e["type"] if call.resolver.compact(t) not in out)
    return out


def _one_from_sources(session: Session, call: service.Call, request: Request, entity_id: str) -> \
        list[tuple[str, dict[str, Any]]]:
    """What the registered sources hold of one entity, each with its registration's mode, asked with
    retrieveEntity, else queryEntity, else queryBatch, as the registration allows."""
    from citybase.twin.sources import forward
    from citybase.twin.sources import service as sources

    out = []
    params = list(request.query_params.multi_items())
    for reg in sources.matching(session=session, call=call, types=None, ids=[entity_id], attrs=None):
        link = call.resolver.link
        types = _registered_types(call, reg, entity_id)
        if forward.allows(reg.body, "retrieveEntity"):
            asked = [kv for kv in _narrowed(call, reg, params) if kv[0] != "id" or any(k == "id" for k, _ in params)]
            got = forward.ask(reg.endpoint, f"entities/{quote(entity_id, safe=':')}", asked, link=link, body=reg.body)
        elif forward.allows(reg.body, "queryEntity"):
            got = forward.ask(reg.endpoint, "entities", [("id", entity_id), *([("type", ",".join(types))] if types
                                                                               else []), *params],
                              link=link, body=reg.body)
        elif forward.allows(reg.body, "queryBatch"):
            selector = {"id": entity_id, **({"type": ",".join(types)} if types else {})}
            got = forward.ask(reg.endpoint, "entityOperations/query", [], link=link, body=reg.body,
                              payload={"type": "Query", "entities": [selector]})
        else:
            continue
        out.extend((reg.mode, _registered_only(call, reg, e)) for e in forward.entities_of(got)
                   if e.get("id") == entity_id)
    return out


def _merged_one(local: list[dict[str, Any]], remote: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    from citybase.twin.sources import forward

    merged = local
    for mode, e in remote:
        merged = forward.merge(merged, [e], first=mode in ("exclusive", "redirect"))
    return merged[0]


def _fetcher(session: Session, call: service.Call) -> Callable[[list[str]], dict[str, dict[str, Any]]]:
    return lambda ids: service.get_entities(session=session, call=call, ids=ids)


def _shown(call: service.Call, request: Request, docs: list[dict[str, Any]], query: service.Query | None,
           inc: Incoming, view: View | None = None, session: Session | None = None) -> Any:
    view = view or View(request, call, allowed=QUERY_PARAMS)
    return view.show(docs, query.attrs if query is not None else None,
                     _fetcher(session, call) if session is not None else None)


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
    _known_params(request, frozenset({"local"}))
    call = call_of(request, inc)
    eid = service.create_entity(session=session, call=call, body=inc.body)
    return no_content(inc, 201, {"Location": f"{PREFIX}/entities/{quote(eid, safe=':/')}"})


@router.get("/entities", summary="Query entities (type, id, idPattern, attrs, q, geoQ, scopeQ, pick/omit, count)")
def query_entities(request: Request, _: Any = Depends(READ), inc: Incoming = Depends(read_geo_query),
                   session: Session = Depends(get_session, scope="function")) -> Response:
    call = call_of(request, inc)
    view = View(request, call, allowed=QUERY_PARAMS)
    p = request.query_params
    if not any(p.get(k) for k in ("type", "attrs", "q", "georel", "geoQ", "scopeQ", "local")):
        raise BadRequestData("a query needs at least one of type, attrs, q, a geo-query, scopeQ or local=true")
    query = _query(request, call)
    docs, total = service.query_entities(session=session, call=call, query=query)
    shown = _shown(call, request, docs, query, inc, view, session)
    if view.pick and inc.accept != GEO:  # an entity pick leaves nothing of is not in the answer
        shown = [e for e in shown if e]
    headers = {"NGSILD-Results-Count": str(total)} if total is not None else {}
    if p.get("local") != "true":  # and what the registered context sources hold (distributed query)
        shown, extra = _from_sources(session, call, request, query, shown)
        if extra and total is not None:
            headers["NGSILD-Results-Count"] = str(total + extra)
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
    view = View(request, call)  # the parameters are checked before the entity is looked up
    try:
        doc = service.get_entity(session=session, call=call, entity_id=entity_id)
    except (ResourceNotFound, NonexistentTenant):
        remote = [] if request.query_params.get("local") == "true" else _one_from_sources(
            session, call, request, entity_id)
        if not remote:
            raise
        return answer(call, inc, _merged_one([], remote))
    every = view.show([doc], fetch=_fetcher(session, call))
    if request.query_params.get("local") != "true" and view.join is None:  # and what registered sources add
        every[0] = _merged_one([every[0]], _one_from_sources(session, call, request, entity_id))
    shown = every[0]
    if view.attrs and not set(shown) - {"id", "type", "scope", "createdAt", "modifiedAt"}:
        raise ResourceNotFound(f"entity {entity_id} has none of the attributes asked for")
    if (view.pick or view.omit) and not shown:
        raise ResourceNotFound(f"pick/omit leave nothing of entity {entity_id}")
    if view.join == "flat" and len(every) > 1:  # the entity and those it links to; alone, it is itself
        return answer(call, inc, every)
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
def patch_attr(entity_id: str, attr: str, request: Request, _: Any = Depends(WRITE), inc: Incoming = Depends(read_merge),
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
    call, refused = batch_call(request, inc)
    if refused is not None:
        return _refused(inc, refused)
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
def batch_query(request: Request, _: Any = Depends(READ), inc: Incoming = Depends(read_geo_body),
                session: Session = Depends(get_session, scope="function")) -> Response:
    call = call_of(request, inc)
    query = _query(request, call, body=inc.body)
    docs, total = service.query_entities(session=session, call=call, query=query)
    headers = {"NGSILD-Results-Count": str(total)} if total is not None else {}
    view = View(request, call, allowed=QUERY_PARAMS)
    if isinstance(inc.body, dict) and inc.body.get("join") is not None:  # linked entities asked for in the Query
        if inc.body["join"] not in ("inline", "flat", "@none"):
            raise BadRequestData("join must be inline, flat or @none")
        level = inc.body.get("joinLevel", 1)
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 10:
            raise BadRequestData("joinLevel must be a whole number from 1 to 10")
        view.join, view.join_level = inc.body["join"], level
    shown = _shown(call, request, docs, query, inc, view, session)
    if request.query_params.get("local") != "true" and not (isinstance(inc.body, dict) and inc.body.get("local")):
        shown, extra = _from_sources(session, call, request, query, shown, payload=inc.body)
        if extra and total is not None:
            headers["NGSILD-Results-Count"] = str(total + extra)
    if inc.accept == GEO:
        body = {"type": "FeatureCollection", "features": _geojson(call, request, shown, docs)}
        return answer(call, inc, body, headers=headers)
    return answer(call, inc, shown, headers=headers)


# ------------------------------------------------------------------------------------------ discovery


@router.get("/types", summary="Entity types (details=true: with their attributes)")
def types(request: Request, _: Any = Depends(READ), inc: Incoming = Depends(read_query),
          session: Session = Depends(get_session, scope="function")) -> Response:
    _known_params(request, frozenset({"details", "local"}))
    call = call_of(request, inc)
    return answer(call, inc, service.entity_types(session=session, call=call, details=_bool(request, "details")))


@router.get("/types/{name:path}", summary="One entity type")
def type_info(name: str, request: Request, _: Any = Depends(READ), inc: Incoming = Depends(read_query),
              session: Session = Depends(get_session, scope="function")) -> Response:
    call = call_of(request, inc)
    if not name:
        return answer(call, inc, service.entity_types(session=session, call=call, details=_bool(request, "details")))
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
    if not name:
        return answer(call, inc, service.attributes(session=session, call=call, details=_bool(request, "details")))
    return answer(call, inc, service.attribute(session=session, call=call, name=name))


# ------------------------------------------------------------------------------------------ temporal


def _temporal_projection(request: Request) -> tuple[set[str] | None, set[str] | None]:
    p = request.query_params
    if p.get("pick") is not None and p.get("omit") is not None:
        raise BadRequestData("pick and omit cannot be used together")
    return (set(parse_projection(p["pick"], "pick")) if p.get("pick") is not None else None,
            set(parse_projection(p["omit"], "omit")) if p.get("omit") is not None else None)


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
    if prop not in ("observedAt", "modifiedAt", "createdAt", "deletedAt"):
        raise BadRequestData("timeproperty must be observedAt, modifiedAt, createdAt or deletedAt")
    tq.timeproperty = prop
    tq.last_n = _int(request, "lastN", None, low=1, high=100_000)
    return tq


def _temporal_page(request: Request, tq: service.TimeQuery, rows: list[list[Any]]) -> Page:
    """Temporal pagination (§6.3.10) of the rows found, unless they are aggregated (periods, not instances)."""
    p = request.query_params
    opts = {o.strip() for v in p.getlist("options") for o in v.split(",")}
    if p.get("format") == "aggregatedValues" or (p.get("format") is None and "aggregatedValues" in opts):
        return Page(rows, [{} for _ in rows])
    return paginate(rows, prop=tq.timeproperty, last_n=tq.last_n, timerel=tq.timerel, time_at=tq.time_at,
                    end_time_at=tq.end_time_at, limit=twin_settings().temporal_limit)


def _temporal_answer(call: service.Call, inc: Incoming, data: Any, page: Page,
                     headers: dict[str, str] | None = None) -> Response:
    """200, or 206 with the Content-Range of the time range shown when pagination cut the answer."""
    if page.content_range is None:
        return answer(call, inc, data, headers=headers)
    return answer(call, inc, data, status=206, headers={**(headers or {}), "Content-Range": page.content_range})


@router.post("/temporal/entities", summary="Create or add to a temporal entity")
def temporal_create(request: Request, _: Any = Depends(WRITE), inc: Incoming = Depends(read_body),
                    session: Session = Depends(get_session, scope="function")) -> Response:
    _known_params(request, frozenset({"local"}))
    call = call_of(request, inc)
    created = service.create_temporal(session=session, call=call, body=inc.body)
    eid = inc.body["id"]
    return no_content(inc, 201 if created else 204,
                      {"Location": f"{PREFIX}/temporal/entities/{quote(eid, safe=':/')}"} if created else None)


@router.get("/temporal/entities", summary="Query temporal evolution (timerel, lastN, temporalValues, aggregation)")
def temporal_query(request: Request, _: Any = Depends(READ), inc: Incoming = Depends(read_query),
                   session: Session = Depends(get_session, scope="function")) -> Response:
    call = call_of(request, inc)
    _known_params(request, TEMPORAL_PARAMS)
    check_request(request)
    pick, omit = _temporal_projection(request)
    p = request.query_params
    if not any(p.get(k) for k in ("type", "attrs", "q", "georel", "scopeQ", "local")):  # ids alone are not (§5.7.4)
        raise BadRequestData("a temporal query needs at least one of type, attrs, q or a geo-query")
    if p.get("attrs") and (pick or omit):
        raise BadRequestData("attrs cannot be combined with pick or omit")
    query = _query(request, call)
    tq = _time_query(request, call)
    ids = service.temporal_candidates(session=session, call=call, query=query, tq=tq)
    total = len(ids)
    ds = _names(request, "datasetId")
    found = [service.temporal_entity(session=session, call=call, entity_id=eid, attrs=query.attrs, tq=tq,
                                     dataset_ids=ds) for eid in ids[query.offset:query.offset + query.limit]]
    if tq.timerel or tq.last_n or query.attrs or ds:  # an entity with nothing in what was asked for is left out
        found = [(ident, rows) for ident, rows in found if rows]
    page = _temporal_page(request, tq, [rows for _, rows in found])
    out = [render_temporal(ident, rows, call.resolver, request, pick, omit, emptied)
           for (ident, _), rows, emptied in zip(found, page.rows, page.emptied, strict=True)]
    headers = {"NGSILD-Results-Count": str(total)} if query.count else {}
    return _temporal_answer(call, inc, out, page, headers)


@router.get("/temporal/entities/{entity_id}", summary="The temporal evolution of an entity")
def temporal_get(entity_id: str, request: Request, _: Any = Depends(READ), inc: Incoming = Depends(read_query),
                 session: Session = Depends(get_session, scope="function")) -> Response:
    call = call_of(request, inc)
    _known_params(request, TEMPORAL_PARAMS)
    check_request(request)
    pick, omit = _temporal_projection(request)
    attrs = _names(request, "attrs")
    if attrs and (pick or omit):
        raise BadRequestData("attrs cannot be combined with pick or omit")
    tq = _time_query(request, call)
    ds = _names(request, "datasetId")
    ident, rows = service.temporal_entity(session=session, call=call, entity_id=entity_id,
                                          attrs=[call.resolver.expand(a) for a in attrs] if attrs else None, tq=tq,
                                          dataset_ids=ds)
    if attrs and not rows:
        raise ResourceNotFound(f"entity {entity_id} has no history of the attributes asked for")
    page = _temporal_page(request, tq, [rows])
    shown = render_temporal(ident, page.rows[0], call.resolver, request, pick, omit, page.emptied[0])
    if (pick or omit) and not shown:
        raise ResourceNotFound(f"pick/omit leave nothing of entity {entity_id}")
    return _temporal_answer(call, inc, shown, page)


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
    if unquote(attr) in (".", ".."):  # a dot segment, however often encoded, names no attribute
        raise BadRequestData(f"{attr[:40]!r} is a dot segment, not an attribute name")
    service.delete_temporal_attribute(session=session, call=call_of(request, inc), entity_id=entity_id, attr=attr,
                                      dataset_id=request.query_params.get("datasetId"),
                                      delete_all=_bool(request, "deleteAll"))
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


@router.post("/temporal/entityOperations/query", summary="Query temporal evolution with a Query body")
@router.post("/temporalEntityOperations/query", include_in_schema=False)
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
        if temporal.get("timeproperty") in ("observedAt", "modifiedAt", "createdAt", "deletedAt"):
            tq.timeproperty = temporal["timeproperty"]
        if isinstance(temporal.get("lastN"), int) and not isinstance(temporal["lastN"], bool) and temporal["lastN"] > 0:
            tq.last_n = temporal["lastN"]
    ids = service.temporal_candidates(session=session, call=call, query=query, tq=tq)
    found = [service.temporal_entity(session=session, call=call, entity_id=eid, attrs=query.attrs, tq=tq)
             for eid in ids[query.offset:query.offset + query.limit]]
    if tq.timerel or tq.last_n or query.attrs:
        found = [(ident, rows) for ident, rows in found if rows]
    page = _temporal_page(request, tq, [rows for _, rows in found])
    out = [render_temporal(ident, rows, call.resolver, request, emptied=emptied)
           for (ident, _), rows, emptied in zip(found, page.rows, page.emptied, strict=True)]
    return _temporal_answer(call, inc, out, page)


# ------------------------------------------------------------------------------------------ @contexts


def _context_info(row: Any, hits: int = 0) -> dict[str, Any]:
    """The record of a kept @context (CIM 009 v1.8 §5.13.3: URL, localId, kind, timestamp, lastUsage,
    numberOfHits; createdAt for timestamp, as clients read it); hits are the stored count plus this process's since start."""
    from citybase.twin.representation import iso

    info = {"URL": row.url, "localId": row.id, "kind": row.kind,
            "createdAt": iso(row.created_at), "numberOfHits": row.hits + hits}
    if row.last_used_at:
        info["lastUsage"] = iso(row.last_used_at)
    return info


CORE_INFO = {"URL": CORE_URL, "localId": "core", "kind": "Cached", "createdAt": "2024-01-01T00:00:00Z",
             "numberOfHits": 0}
# the contexts shipped in the package (citybase's city terms), listed and served like the core one
PACKAGED_INFO = {url: {"URL": url, "localId": lid, "kind": "Cached", "createdAt": "2024-01-01T00:00:00Z",
                       "numberOfHits": 0} for url, (lid, _) in PACKAGED.items()}


@router.get("/jsonldContexts", summary="The @contexts kept here (details=true, kind=Hosted|Cached|ImplicitlyCreated)")
def list_contexts(request: Request, _: Any = Depends(READ), inc: Incoming = Depends(read_query),
                  session: Session = Depends(get_session, scope="function")) -> Response:
    kind = request.query_params.get("kind")
    if kind is not None and kind not in ("Hosted", "Cached", "ImplicitlyCreated"):
        raise BadRequestData("kind must be Hosted, Cached or ImplicitlyCreated")
    rows = service.contexts(session=session, kind=kind)
    details = _bool(request, "details")
    store = contexts_of(request)
    infos = ([CORE_INFO, *PACKAGED_INFO.values()] if kind in (None, "Cached") else []) + [
        _context_info(r, store.hits(r.url)) for r in rows]
    body = infos if details else [i["URL"] for i in infos]
    return Response(_dumps(body), media_type=JSON)


@router.post("/jsonldContexts", status_code=201, summary="Host an @context here")
def add_context(request: Request, _: Any = Depends(WRITE), inc: Incoming = Depends(read_document),
                session: Session = Depends(get_session, scope="function")) -> Response:
    url = service.host_context(session=session, body=inc.body, base_url=str(request.base_url))
    ctx = inc.body["@context"]
    for item in ctx if isinstance(ctx, list) else [ctx]:  # the URLs it names are kept as Cached contexts now
        if isinstance(item, str) and item not in CORE_URLS:
            contexts_of(request).document(item)
    return Response(status_code=201, headers={"Location": url[url.index(PREFIX):]})


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
        return Response(_dumps(_context_info(row, contexts_of(request).hits(row.url))), media_type=JSON)
    return Response(row.body.encode("utf-8"), media_type=JSON)


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
    if reload:  # only a Cached context can be fetched again
        try:
            row = service.context(session=session, cid=cid)
        except ResourceNotFound:
            raise BadRequestData(f"there is no @context {cid[:200]} to reload") from None
        if row.kind != "Cached":
            raise BadRequestData(f"a {row.kind} @context cannot be reloaded; only Cached ones are fetched again")
    url = service.delete_context(session=session, cid=cid)
    contexts_of(request).forget(url)
    if reload:
        session.commit()  # the old copy is gone before the new one is fetched and kept
        contexts_of(request).document(url)
    return Response(status_code=204)


def also_with_a_trailing_slash(router: APIRouter) -> None:
    """Answer ``…/entities/`` like ``…/entities``: NGSI-LD clients (the ETSI suite among them) build URLs with
    a trailing slash, and a 307 redirect would make every such call two."""
    for route in list(router.routes):
        if isinstance(route, APIRoute) and not route.path.endswith("/"):
            router.add_api_route(route.path[len(PREFIX):] + "/", route.endpoint, methods=list(route.methods),
                                 status_code=route.status_code, include_in_schema=False, summary=route.summary)


also_with_a_trailing_slash(router)


@router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
def no_such_operation(rest: str, request: Request, _: Any = Depends(READ)) -> Response:
    """What no route above answers: a path that exists with other methods is 405, an empty id in the path
    the client's mistake (400), the rest 404."""
    path = request.url.path
    if rest.startswith("temporal/") and "/attrs//" in rest or rest == "temporal/entities/" and \
            request.method in ("PATCH", "PUT", "DELETE"):  # no attribute (entity) named: no such operation there
        err = OperationNotSupported(f"{request.method} needs the name of an attribute instance's attribute "
                                    f"or an entity id: {path[:200]}")
        err.status = 405
        raise err
    empty_id = rest.startswith("/") or ("//" in rest and "/attrs//" not in rest) or (
        rest == "entities/" and request.method in ("PATCH", "PUT", "DELETE"))
    if empty_id:  # an entity id left out of the path: the client's mistake, whatever the method
        raise BadRequestData("an id in the path is empty; put the entity id (or attribute name) between the slashes")
    for route in router.routes:
        if isinstance(route, APIRoute) and route.endpoint is not no_such_operation and route.path_regex.match(path) \
                and request.method not in route.methods:
            err = OperationNotSupported(f"{request.method} is not an operation on {path[:200]}")
            err.status = 405
            raise err
    if "//" in rest or rest.rstrip("/") in ("entities", "temporal/entities") and rest.endswith("/"):
        raise BadRequestData("an id in the path is empty; put the entity id (or attribute name) between the slashes")
    raise ResourceNotFound(f"there is no NGSI-LD operation at {PREFIX}/{rest[:200]} here")
