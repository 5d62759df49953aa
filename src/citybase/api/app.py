"""The FastAPI application: domains' routers under /api/v1, the pages at /, docs with local assets."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi_offline import FastAPIOffline
from sqlalchemy import Engine

from citybase import __version__
from citybase.api import observability, problems
from citybase.api.events import router as event_catalogue_router
from citybase.api.identity import identity_provider
from citybase.api.inputs import refuse_invalid_input
from citybase.api.language import LanguageMiddleware
from citybase.bus import Bus, connect
from citybase.core.settings import Settings, load_settings
from citybase.kernel import runtime
from citybase.kernel.domain import domains
from citybase.kernel.outbox import Relay
from citybase.ops.intake.open311 import Open311Route
from citybase.security.deps import Allow, allow
from citybase.security.roles import PUBLIC
from citybase.storage.db import make_engine, make_sessionmaker
from citybase.twin.router import NgsiRoute
from citybase.twin.schemas import NgsiProblem
from citybase.web.router import router as web_router

log = logging.getLogger("citybase.api")
API_PREFIX = "/api/v1"
# The interactive documentation pages (served from fastapi-offline's packaged assets) are public.
DOC_PAGES = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})


@dataclass(frozen=True)
class RouteInfo:
    path: str
    methods: frozenset[str]
    allow: Allow | None


def api_routes(app: FastAPI) -> list[RouteInfo]:
    """Every API route with its full path (prefixes of included routers applied) and its Allow."""
    out = []
    for ctx in iter_route_contexts(app.routes):
        if isinstance(ctx.original_route, APIRoute) and ctx.path not in DOC_PAGES:
            out.append(RouteInfo(ctx.path, frozenset(ctx.methods or ()), route_allow(ctx.original_route)))
    return out


def route_allow(route: APIRoute) -> Allow | None:
    """The Allow declaration among a route's dependencies, if any."""
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        if isinstance(dep.call, Allow):
            return dep.call
        stack.extend(dep.dependencies)
    return None


def check_every_route_declares_access(app: FastAPI) -> None:
    """Deny by default: refuse to build an app with a route that does not say who may call it."""
    missing = [f"{sorted(r.methods)} {r.path}" for r in api_routes(app) if r.allow is None]
    if missing:
        raise RuntimeError(f"routes without an Allow(...) declaration: {', '.join(missing)}")


def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {problems.PROBLEM: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}}


def _open311_error(description: str) -> dict[str, Any]:
    return {"description": description + " (the GeoReport v2 error list, in the format of the URL; "
            "problem+json when the request accepts application/problem+json)",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Open311Errors"}},
                        "text/xml": {"schema": {"type": "string"}},
                        problems.PROBLEM: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}}


UNAVAILABLE = "the database or the bus is unavailable for a moment; retry after Retry-After seconds"


def _ngsi_error(description: str) -> dict[str, Any]:
    return {"description": description + " (an NGSI-LD error: application/json with an "
            "https://uri.etsi.org/ngsi-ld/errors/… type)",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NgsiProblem"}}}}


def ngsi_responses(methods: frozenset[str]) -> dict[str, dict[str, Any]]:
    """What an NGSI-LD operation answers (CIM 009 §6): its successes, and its errors in the standard's format."""
    writes = bool(methods - {"GET", "HEAD", "OPTIONS"})
    out: dict[str, dict[str, Any]] = {
        "400": _ngsi_error("BadRequestData or InvalidRequest: a parameter, the body or its @context is wrong"),
        "401": _ngsi_error("no bearer token, or an unknown one (unless the twin is open to anonymous callers)"),
        "403": _ngsi_error("the caller's roles may not do this"),
        "404": _ngsi_error("ResourceNotFound or NonexistentTenant"),
        "406": _ngsi_error("the Accept header names no media type this operation produces"),
        "503": _ngsi_error(UNAVAILABLE),
        "504": _ngsi_error("LdContextNotAvailable: an @context the request names cannot be retrieved"),
    }
    if writes:
        out["409"] = _ngsi_error("AlreadyExists")
        out["415"] = _ngsi_error("the body is not application/json or application/ld+json")
        out["207"] = {"description": "done for some entities or attributes, not others (UpdateResult or "
                                     "BatchOperationResult)"}
        out["204"] = {"description": "done; nothing to answer"}
    if "POST" in methods:
        out["201"] = {"description": "created (Location says where)"}
    return out


def error_responses(methods: frozenset[str], allow_: Allow | None, open311: bool,
                    names_something: bool) -> dict[str, dict[str, Any]]:
    """The error statuses an operation can answer, each with its schema: what every route says once.

    404 goes to every operation that names something (in the path, a filter or the body: an area code,
    a building id, a point), since what it names may not exist."""
    writes = bool(methods - {"GET", "HEAD", "OPTIONS"})
    if open311:  # the spec's errors: 400 for the client's mistakes, 403 for the key, 404 for unknown ids
        out = {"400": _open311_error("a parameter is missing or wrong"),
               "403": _open311_error("the api_key is missing, unknown or not allowed to do this"),
               "503": _open311_error(UNAVAILABLE)}
        if names_something:
            out["404"] = _open311_error("no such service, request, token or format")
        return out
    public = allow_ is not None and allow_.public
    out = {"401": _problem("a bearer token was sent and it is unknown, expired or revoked" if public
                           else "the bearer token is missing, unknown, expired or revoked")}
    if not public:
        out["403"] = _problem("the caller's roles may not call this endpoint")
    if names_something:
        out["404"] = _problem("something the request names does not exist (an id or code in the path, "
                              "an area or department in a filter or the body, a point outside the city)")
    if writes:
        out["409"] = _problem("the change conflicts with the current state (a workflow step not possible now, "
                              "a key already taken)")
    out["422"] = _problem("a parameter or the body is invalid; `errors` lists each one")
    out["503"] = _problem(UNAVAILABLE)
    return out


def document_errors(app: FastAPI) -> None:
    """Every error status in every operation of the OpenAPI, as problem+json with the ProblemDetails schema
    (Open311's routes: the spec's error list), instead of FastAPI's application/json 422 alone."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        for ctx in iter_route_contexts(app.routes):
            route = ctx.original_route
            if not isinstance(route, APIRoute) or ctx.path_format not in schema.get("paths", {}):
                continue
            for method in ctx.methods or ():
                operation = schema["paths"][ctx.path_format].get(method.lower())
                if operation is not None:
                    if isinstance(route, NgsiRoute):
                        errors = ngsi_responses(frozenset(ctx.methods or ()))
                    else:
                        errors = error_responses(frozenset(ctx.methods or ()), route_allow(route),
                                                 isinstance(route, Open311Route),
                                                 bool(operation.get("parameters") or operation.get("requestBody")))
                    declared = operation.setdefault("responses", {})
                    declared.pop("422", None)  # FastAPI's own, as application/json: replaced by ours
                    declared.update({k: v for k, v in errors.items() if k not in declared})
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        defs = problems.ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(defs.pop("$defs", {}))
        components["ProblemDetails"] = defs
        components["NgsiProblem"] = NgsiProblem.model_json_schema()
        components["Open311Errors"] = {"type": "array", "items": {
            "type": "object", "properties": {"code": {"type": "integer"}, "description": {"type": "string"}},
            "required": ["code", "description"]}}
        for name in ("HTTPValidationError", "ValidationError"):  # no operation refers to them any more
            components.pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def load_classifier(settings: Settings):
    """The trained incident classifier in the data folder, or None (keyword suggestions then)."""
    from citybase.ops.classification.training import load_classifier as load

    return load(settings.data_dir)


@asynccontextmanager
async def _lifespan(app: FastAPI):
    """Warm every domain up, start the runtime (the outbox relay and the cache listener; with
    ``settings.workers`` every domain's consumers and timers too), stop it at exit (an audit checkpoint
    first when this process ran the timers)."""
    import anyio.to_thread

    # Sync endpoints run in this many threads. SQLite has one writer, and Python one interpreter lock:
    # past a few threads, more only adds waiting; PostgreSQL overlaps its I/O, so it gets more.
    threads = app.state.settings.threads or (32 if app.state.engine.dialect.name == "postgresql" else 8)
    anyio.to_thread.current_default_thread_limiter().total_tokens = threads

    rt: runtime.Runtime = app.state.runtime
    runtime.warm_up(rt)  # the first requests must not all build the lookup indexes at once
    # The outbox relay runs in every serving process: it publishes this process's commits at once, and on
    # PostgreSQL several processes share the work (SKIP LOCKED).
    runtime.start(rt, work=app.state.settings.workers)
    app.state.relay = rt.relay
    app.state.workers = [*rt.consumers, *rt.timers]
    try:
        yield
    finally:
        for t in [*rt.consumers, *rt.timers]:
            t.stop()
        if app.state.settings.workers:
            _checkpoint_audit(rt)
        runtime.stop(rt)
        rt.consumers, rt.timers = [], []


def _checkpoint_audit(rt: runtime.Runtime) -> None:
    """Sign the audit chain head at shutdown, so the entries of this run are proven; never fail the shutdown."""
    from citybase.security.domain import checkpoint_audit

    try:
        checkpoint_audit(rt)
    except Exception:  # noqa: BLE001 - a database or disk fault at exit is logged, the process still stops
        log.exception("audit checkpoint at shutdown failed")


def create_app(settings: Settings | None = None, *, engine: Engine | None = None, bus: Bus | None = None) -> FastAPI:
    """Build the app for a database (from settings unless an engine is given) and a bus."""
    settings = settings or load_settings()
    engine = engine or make_engine(settings.database_url)
    app = FastAPIOffline(
        lifespan=_lifespan,
        title="citybase", version=__version__,
        description="城市数字底座 — the digital foundation of a city: spatial base, registries, identity and audit.",
        docs_url="/docs", redoc_url="/redoc",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = make_sessionmaker(engine)
    app.state.bus = bus or connect(settings.bus_url)
    app.state.classifier = load_classifier(settings)
    app.state.oidc = identity_provider()  # 统一身份认证 (CITYBASE_OIDC_*), None while off
    app.state.runtime = runtime.Runtime(engine=engine, bus=app.state.bus, sessions=app.state.sessions,
                                        settings=settings, domains=domains(), state=app.state)
    # The relay thread starts in the lifespan; without it (tests) `app.state.relay.drain()` publishes.
    app.state.relay = app.state.runtime.relay = Relay(engine, app.state.bus)
    problems.install(app)
    app.add_middleware(LanguageMiddleware)
    app.add_middleware(observability.RequestContextMiddleware)  # outermost: its id and timing cover all

    # every route's text is checked once, before its own validation (see citybase.api.inputs)
    guard = [Depends(refuse_invalid_input)]
    api = APIRouter(prefix=API_PREFIX, dependencies=guard)
    api.include_router(event_catalogue_router)
    for dom in domains():
        for router in dom.routers() if dom.routers else ():
            api.include_router(router)

    @api.get("/health", tags=["platform"], summary="Liveness and version")
    def health(_: object = Depends(allow(PUBLIC))) -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    app.include_router(api)
    app.include_router(observability.router)
    for dom in domains():
        for router in dom.root_routers() if dom.root_routers else ():
            app.include_router(router)  # Open311 checks its own parameters, answering in the spec's terms
    app.include_router(web_router, dependencies=guard)
    check_every_route_declares_access(app)
    document_errors(app)
    return app



def factory() -> FastAPI:
    """The app for ``uvicorn --factory`` (``citybase serve --workers N``): settings from the environment, the
    domains' tables registered, logs set up, in each serving process."""
    from citybase.kernel.domain import load_models
    from citybase.kernel.logs import setup_logging
    from citybase.kernel.process import limit_malloc_arenas

    limit_malloc_arenas()
    load_models()
    settings = load_settings()
    setup_logging(settings.log_format, settings.log_level)
    return create_app(settings)
