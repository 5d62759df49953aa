"""The FastAPI application: domains' routers under /api/v1, the pages at /, docs with local assets."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi_offline import FastAPIOffline
from sqlalchemy import Engine

from citybase import __version__
from citybase.api import observability, problems
from citybase.api.language import LanguageMiddleware
from citybase.bus import Bus, connect
from citybase.core.settings import Settings, load_settings
from citybase.geo.router import router as geo_router
from citybase.kernel.outbox import Relay
from citybase.ops.domain import DOMAIN as OPS
from citybase.registry.router import router as registry_router
from citybase.security.deps import Allow, allow
from citybase.security.roles import PUBLIC
from citybase.security.router import router as security_router
from citybase.storage.db import make_engine, make_sessionmaker
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


def load_classifier(settings: Settings):
    """The trained incident classifier in the data folder, or None (keyword suggestions then)."""
    path = Path(settings.data_dir) / "classifier.joblib"
    if not path.exists():
        return None
    from citybase.ops.classification.classifier import TextClassifier

    try:
        return TextClassifier.load(path)
    except (ValueError, OSError) as exc:
        log.warning("classifier at %s not loaded: %s (retrain with `citybase ops train-classifier`)", path, exc)
        return None


@asynccontextmanager
async def _lifespan(app: FastAPI):
    """Start the outbox relay, the background consumers (IoT alarms, webhooks) and the supervision timer;
    stop them at exit."""
    import anyio.to_thread

    from citybase.geo.service import warm_up

    # Sync endpoints run in this many threads. SQLite has one writer, and Python one interpreter lock:
    # past a few threads, more only adds waiting; PostgreSQL overlaps its I/O, so it gets more.
    threads = app.state.settings.threads or (32 if app.state.engine.dialect.name == "postgresql" else 8)
    anyio.to_thread.current_default_thread_limiter().total_tokens = threads

    with app.state.sessions() as session:
        warm_up(session=session)  # the first requests must not all build the lookup indexes at once
    # The outbox relay runs in every serving process: it publishes this process's commits at once, and on
    # PostgreSQL several processes share the work (SKIP LOCKED).
    app.state.relay.start()
    workers = []
    if app.state.settings.workers:
        from citybase.ops import workers as w

        workers = [w.alarm_consumer(app.state.bus, app.state.sessions, app.state.classifier),
                   w.webhook_consumer(app.state.bus, app.state.sessions),
                   w.Supervisor(app.state.engine, app.state.bus)]
        for t in workers:
            t.start()
    app.state.workers = workers
    try:
        yield
    finally:
        for t in workers:
            t.stop()
        if app.state.settings.workers:
            _checkpoint_audit(app)
        app.state.relay.stop()
        try:
            app.state.relay.drain()  # what this process committed last (the checkpoint too) goes out before exit
        except Exception:  # noqa: BLE001 - the bus is down: the events wait in the outbox for the next relay
            log.warning("events left in the outbox at shutdown; the next relay publishes them")


def _checkpoint_audit(app: FastAPI) -> None:
    """Sign the audit chain head at shutdown, so the entries of this run are proven; never fail the shutdown."""
    from citybase.security.audit import checkpoint, checkpoint_event

    def publish(cp) -> None:  # the bus copy of the checkpoint, through the outbox
        from citybase.kernel import outbox

        with app.state.sessions() as session:
            outbox.queue(session, *checkpoint_event(cp))
            session.commit()

    try:
        checkpoint(app.state.engine, data_dir=app.state.settings.data_dir, publish=publish)
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
    app.state.relay = Relay(engine, app.state.bus)  # started in the lifespan
    app.state.classifier = load_classifier(settings)
    problems.install(app)
    app.add_middleware(LanguageMiddleware)
    app.add_middleware(observability.RequestContextMiddleware)  # outermost: its id and timing cover all

    api = APIRouter(prefix=API_PREFIX)
    api.include_router(geo_router)
    api.include_router(registry_router)
    api.include_router(security_router)
    for router in OPS.routers():
        api.include_router(router)

    @api.get("/health", tags=["platform"], summary="Liveness and version")
    def health(_: object = Depends(allow(PUBLIC))) -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    app.include_router(api)
    app.include_router(observability.router)
    for router in OPS.root_routers():
        app.include_router(router)
    app.include_router(web_router)
    check_every_route_declares_access(app)
    return app

