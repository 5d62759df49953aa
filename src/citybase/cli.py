"""The `citybase` command: demo, serve, db upgrade, generate, ops, audit verify and checkpoint, users, doctor."""

from __future__ import annotations

import json
import logging
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from citybase.core.settings import Settings, load_settings
from citybase.storage.db import has_table, make_engine

app = typer.Typer(help="citybase — 城市数字底座: the digital foundation of a city.", no_args_is_help=True,
                  add_completion=False)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
users_app = typer.Typer(help="Users and tokens.", no_args_is_help=True)
ops_app = typer.Typer(help="一网统管: the incident loop.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
app.add_typer(users_app, name="users")
app.add_typer(ops_app, name="ops")
console = Console()


def _mount_domain_commands() -> None:
    """Each domain's own commands (its descriptor's ``cli``) as `citybase <domain> …`."""
    from citybase.kernel.domain import domains

    for dom in domains():
        if dom.cli is not None:
            app.add_typer(dom.cli(), name=dom.name)


_mount_domain_commands()

@app.callback()
def _start(ctx: typer.Context) -> None:
    """Before any command: validate the settings (exit 2 naming each wrong variable), register every
    domain's tables, set up the logs."""
    from citybase.core.settings import InvalidSettings
    from citybase.kernel.domain import load_models
    from citybase.kernel.logs import setup_logging
    from citybase.kernel.process import limit_malloc_arenas
    from citybase.kernel.settings import check_settings

    limit_malloc_arenas()  # before any thread: the resident memory stays flat (see kernel.process)
    load_models()
    try:
        settings = check_settings()
    except InvalidSettings as exc:
        if ctx.invoked_subcommand == "doctor":  # the doctor reports it as one of its findings
            return
        for problem in exc.problems:
            typer.echo(f"citybase: {problem}", err=True)
        raise typer.Exit(2) from None
    setup_logging(settings.log_format, settings.log_level)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # "Context impl SQLiteImpl" on every command is noise


SizeOpt = Annotated[str, typer.Option("--size", help="small (seconds, for tests) or district (≈1.1 M persons)")]
SeedOpt = Annotated[int, typer.Option("--seed", help="the same seed gives the same city")]


def _engine(settings: Settings) -> Engine:
    return make_engine(settings.database_url)


def _upgrade(engine: Engine) -> None:
    from citybase.storage.migrate import upgrade

    upgrade(engine)


def _city_exists(engine: Engine) -> bool:
    from citybase.geo.models import Area

    if not has_table(engine, "areas"):
        return False
    with Session(engine) as s:
        return (s.scalar(select(func.count()).select_from(Area)) or 0) > 0


@contextmanager
def _progress_bar():
    with Progress(TextColumn("[bold]{task.description:<16}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as bar:
        tasks: dict[str, int] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


def _generate(engine: Engine, size: str, seed: int) -> None:
    from citybase.demo.generator import SIZES, generate
    from citybase.geo.service import reset_caches

    if size not in SIZES:
        raise typer.BadParameter(f"unknown size {size!r}; use {' or '.join(SIZES)}", param_hint="--size")
    started = time.perf_counter()
    console.print(f"Generating the [bold]{size}[/] demo city (seed {seed}) into {engine.url.render_as_string()} …")
    with _progress_bar() as update:
        report = generate(engine, size=size, seed=seed, progress=update)
    reset_caches()
    _announce(engine, "geo.indexes")  # serving processes drop their grid and address indexes
    table = Table("registry", "rows", title=f"Demo city generated in {time.perf_counter() - started:.1f} s")
    for k, v in report.counts.items():
        table.add_row(k, f"{v:,}")
    console.print(table)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database to the newest schema (SQLite or PostgreSQL)."""
    settings = load_settings()
    engine = _engine(settings)
    _upgrade(engine)
    from citybase.storage.migrate import current_revision

    console.print(f"Database at revision [bold]{current_revision(engine)}[/]: {engine.url.render_as_string()}")


@app.command()
def generate(size: SizeOpt = "small", seed: SeedOpt = 2026,
             reset: Annotated[bool, typer.Option("--reset", help="drop every table first")] = False) -> None:
    """Generate the demo city into an empty database."""
    settings = load_settings()
    engine = _engine(settings)
    if reset:
        from citybase.storage.migrate import downgrade_all

        downgrade_all(engine)
    _upgrade(engine)
    if _city_exists(engine):
        console.print("[red]The database already holds a city.[/] Use --reset to replace it, or point "
                      "CITYBASE_DATABASE_URL / CITYBASE_DATA_DIR elsewhere.")
        raise typer.Exit(1)
    _generate(engine, size, seed)


def _announce(engine: Engine, cache: str) -> None:
    """Queue a cache invalidation through the outbox (relayed by any running process, or the next one)."""
    from citybase.kernel.runtime import invalidate

    if has_table(engine, "kernel_outbox"):
        with Session(engine) as s:
            invalidate(s, cache)
            s.commit()


def _serve_many(settings: Settings, host: str, port: int, workers: int) -> None:
    """N serving processes from the app factory; by default they run no consumers or timers (a
    `citybase worker` does), and their metrics go to one multiprocess folder."""
    import os

    import uvicorn

    from citybase.kernel.metrics import reset_multiprocess_dir

    if settings.database_url.startswith("sqlite") or settings.bus_url.startswith("memory:"):
        console.print("[red]--workers N>1 needs PostgreSQL and NATS[/]: with SQLite or memory:// each process would "
                      "have its own in-process bus (events and caches of one process never reach the others). Set "
                      "CITYBASE_DATABASE_URL=postgresql+psycopg://… and CITYBASE_BUS_URL=nats://…, or serve one process.")
        raise typer.Exit(2)
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(settings.data_dir / "metrics")
    reset_multiprocess_dir(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
    os.environ.setdefault("CITYBASE_WORKERS", "0")  # background work in `citybase worker`, unless told
    console.print(f"Serving citybase at [bold]http://{host}:{port}[/] with {workers} processes "
                  f"(background work: {'here too' if os.environ['CITYBASE_WORKERS'] not in ('0', 'false', 'no') else 'run `citybase worker`'})")
    uvicorn.run("citybase.api.app:factory", factory=True, host=host, port=port, workers=workers, log_config=None)


def _serve(settings: Settings, host: str | None, port: int | None, simulate: float = 0.0,
           devices: list | None = None) -> None:
    import uvicorn

    from citybase.api.app import create_app

    h, p = host or settings.host, port or settings.port
    app_ = create_app(settings)
    if simulate > 0:
        from citybase.demo.simulation import Simulation

        Simulation(app_.state.engine, app_.state.bus, rate=simulate, classifier=app_.state.classifier).start()
        console.print(f"Living demo: about {simulate:g} reports a minute at the daily peak, departments at work.")
        from sqlalchemy.orm import Session

        from citybase.demo.services_simulation import ServicesSimulation
        from citybase.services import service as services

        with Session(app_.state.engine) as session:
            has_bundles = bool(services.list_bundles(session=session))
        if has_bundles:  # 一网通办 loaded (citybase demo): applications arrive and clerks work them
            ServicesSimulation(app_.state.engine, rate=simulate / 2, data_dir=settings.data_dir).start()
            console.print(f"一网通办: about {simulate / 2:g} applications a minute, departments' clerks at work.")
    _iot(settings, app_, h, p, devices if simulate > 0 else None)
    console.print(f"Serving citybase at [bold]http://{h}:{p}[/]  (API docs: http://{h}:{p}/docs; Ctrl+C stops)")
    uvicorn.run(app_, host=h, port=p, log_config=None)  # logs through kernel.logs, set up at start


def _iot(settings: Settings, app_, host: str, port: int, devices: list | None) -> None:
    """The IoT path of one serving process: with a broker configured and the in-process bus, a bridge in this
    process (a deployment runs `citybase iot bridge` beside NATS instead); in the living demo, the simulated
    devices (over MQTT when a broker is configured, else over the HTTP ingest), and say which."""
    from citybase.iot.settings import iot_settings

    mqtt = iot_settings().mqtt_url
    if mqtt and settings.bus_url.startswith("memory:"):
        from citybase.iot.bridge import Bridge
        from citybase.iot.mqtturl import redact

        try:
            bus = app_.state.bus  # back-pressure: past 80 events (groups of ≤ 250 messages) the ingest has not
            # settled, the bridge takes no more and the broker keeps the rest
            Bridge(mqtt, bus, iot_settings().bridge_name, hold=lambda: bus.waiting("iot-ingest") > 80).start()
            console.print(f"IoT: devices' messages taken from the broker {redact(mqtt)} by a bridge in this process.")
        except Exception as exc:  # noqa: BLE001 - the broker is away: say so and serve without it
            console.print(f"[yellow]IoT: the broker {redact(mqtt)} is not reachable ({exc}); devices can still "
                          "report over HTTP (POST /api/v1/iot/readings).[/]")
            mqtt = None
    elif not mqtt:
        console.print("IoT: no broker configured (CITYBASE_IOT_MQTT_URL): devices report over HTTP, "
                      "POST /api/v1/iot/readings.")
    if not devices:
        return
    from citybase.demo.iot import IotSimulation

    sim = IotSimulation(devices, base_url=f"http://{host}:{port}", mqtt_url=mqtt)
    sim.start()
    console.print(f"物联感知: {len(devices):,} simulated devices report over {sim.via} (the last hour replayed "
                  "first); rain, a tilted manhole cover, smoke and faults every few minutes.")


def _train(settings: Settings, engine: Engine, corpus: int, seed: int) -> None:
    from citybase.ops.classification.training import train_classifier

    with console.status("Training the incident classifier (jieba + scikit-learn) …"), Session(engine) as s:
        r = train_classifier(session=s, data_dir=settings.data_dir, corpus_per_category=corpus, seed=seed)
        s.commit()  # the announcement: every running process reloads the model
    e = r.evaluation
    console.print(f"Classifier trained on {r.history:,} labelled reports of the city + {r.generated:,} generated; "
                  f"held-out macro-F1 [bold]{e.macro_f1:.3f}[/], accuracy {e.accuracy:.3f} on {e.n:,} texts "
                  f"→ {r.path}")
    console.print("  weakest: " + ", ".join(f"{c} {f:.2f}" for c, f in e.worst))


@app.command()
def serve(host: Annotated[str | None, typer.Option(help="default 127.0.0.1")] = None,
          port: Annotated[int | None, typer.Option(help="default 8000")] = None,
          workers: Annotated[int, typer.Option("--workers", min=1, help="serving processes (N>1: PostgreSQL and NATS; "
                                               "consumers and timers then in `citybase worker`)")] = 1) -> None:
    """Serve the API and the pages (one process with all background work, or N serving processes)."""
    settings = load_settings()
    _upgrade(_engine(settings))
    if workers > 1:
        _serve_many(settings, host or settings.host, port or settings.port, workers)
        return
    _serve(settings, host, port)


@app.command()
def worker() -> None:
    """Run the outbox relay, every domain's consumers and timers, and no HTTP; stops cleanly on SIGTERM or Ctrl+C."""
    import signal
    import threading

    from citybase.bus import connect
    from citybase.kernel import runtime
    from citybase.kernel.domain import domains
    from citybase.ops.classification.training import load_classifier
    from citybase.security.domain import checkpoint_audit
    from citybase.storage.db import make_sessionmaker

    settings = load_settings()
    engine = _engine(settings)
    _upgrade(engine)
    if settings.bus_url.startswith("memory:"):
        console.print("[yellow]note:[/] with memory:// this worker's bus is its own: it relays and consumes only "
                      "events of this process. Use CITYBASE_BUS_URL=nats://… beside serving processes.")
    bus = connect(settings.bus_url)
    rt = runtime.Runtime(engine=engine, bus=bus, sessions=make_sessionmaker(engine), settings=settings,
                         domains=domains())
    rt.state.classifier = load_classifier(settings.data_dir)
    halt = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: halt.set())
    runtime.start(rt)
    names = [c.consumer for c in rt.consumers] + [t.lease for t in rt.timers]
    console.print(f"citybase worker: relay, cache listener and {', '.join(names)} (SIGTERM or Ctrl+C stops)")
    try:
        while not halt.wait(1.0):
            pass
    finally:
        for t in [*rt.consumers, *rt.timers]:
            t.stop()
        try:
            checkpoint_audit(rt)
        except Exception:  # noqa: BLE001 - logged; the worker still stops
            logging.getLogger("citybase.cli").exception("audit checkpoint at shutdown failed")
        runtime.stop(rt)
        bus.close()
        console.print("citybase worker stopped")


@app.command()
def simulate(devices: Annotated[int, typer.Option(help="simulated devices (the district's first N, provisioned if missing)")] = 1000,
             rate: Annotated[float | None, typer.Option(help="at most this many messages a second")] = None,
             duration: Annotated[float | None, typer.Option(help="stop after this many seconds")] = None,
             mqtt: Annotated[str | None, typer.Option(help="the broker (default CITYBASE_IOT_MQTT_URL)")] = None,
             http: Annotated[str | None, typer.Option(help="a citybase server (default http://127.0.0.1:8000 "
                                                          "when no broker is configured)")] = None,
             seed: SeedOpt = 2026,
             backfill: Annotated[float, typer.Option(help="start this many hours ago (replayed fast)")] = 0.0,
             time_scale: Annotated[float, typer.Option(help="simulated seconds per wall second")] = 1.0,
             fast: Annotated[bool, typer.Option(help="not in real time: as fast as possible (or --rate)")] = False) -> None:
    """Simulated IoT devices (模拟物联网设备) sending realistic readings: daily rhythms, noise, drop-outs."""
    import json as _json

    from citybase.demo.iot import ensure_devices
    from citybase.iot import simulator
    from citybase.iot.settings import iot_settings

    settings = load_settings()
    engine = _engine(settings)
    _upgrade(engine)
    if not _city_exists(engine):
        console.print("[red]No city in this database:[/] run `citybase demo` or `citybase generate` first.")
        raise typer.Exit(2)
    with _progress_bar() as update:
        specs = ensure_devices(engine, settings.data_dir, n=devices, seed=seed, progress=update)
    path = settings.data_dir / "iot-simulated-devices.json"
    path.touch(mode=0o600)
    path.write_text(_json.dumps([s._asdict() for s in specs], ensure_ascii=False))
    mqtt = mqtt or (None if http else iot_settings().mqtt_url)
    if not mqtt:
        http = http or f"http://{settings.host}:{settings.port}"
    console.print(f"{len(specs):,} devices → {'MQTT ' + mqtt if mqtt else 'HTTP ' + str(http)}")
    simulator.simulate(tokens=path, mqtt=mqtt, http=None if mqtt else http, rate=rate, duration=duration, seed=seed,
                       time_scale=time_scale, backfill=backfill, fast=fast, say=console.print)


@app.command()
def demo(size: SizeOpt = "district", seed: SeedOpt = 2026,
         host: Annotated[str | None, typer.Option(help="default 127.0.0.1")] = None,
         port: Annotated[int | None, typer.Option(help="default 8000")] = None,
         serve_: Annotated[bool, typer.Option("--serve/--no-serve", help="serve after setting up")] = True,
         simulate: Annotated[float, typer.Option(help="reports a minute at the daily peak (0: none)")] = 12.0,
         iot_devices: Annotated[int, typer.Option("--iot-devices", help="simulated IoT devices (0: none)")] = 3000) -> None:
    """Set up the demo city if it is not there yet (migrate, generate, demo users, IoT devices) and serve it."""
    from citybase.demo.accounts import create_demo_users

    settings = load_settings()
    engine = _engine(settings)
    _upgrade(engine)
    if _city_exists(engine):
        console.print("The demo city is already there; serving it (use `citybase generate --reset` for a new one).")
    else:
        _generate(engine, size, seed)
    from citybase.ops.classification.training import MODEL_FILE

    if not (settings.data_dir / MODEL_FILE).exists():
        _train(settings, engine, corpus=150, seed=seed)
    tokens = create_demo_users(engine, settings.data_dir)
    from citybase.demo.services import load_services_demo

    tokens.update(load_services_demo(engine, settings.data_dir))  # 一网通办: catalogue, bundles, clerks
    specs = []
    if iot_devices:
        from citybase.demo.iot import ensure_devices

        with _progress_bar() as update:
            specs = ensure_devices(engine, settings.data_dir, n=iot_devices, seed=seed, progress=update)
        console.print(f"物联感知: {len(specs):,} devices in the district (also twin entities).")
    table = Table("user", "token", title=f"Demo tokens (also in {settings.data_dir / 'demo-tokens.json'})")
    for user, token in tokens.items():
        table.add_row(user, token)
    console.print(table)
    if serve_:
        _serve(settings, host, port, simulate=simulate, devices=specs)


@ops_app.command("train-classifier")
def train_classifier(corpus: Annotated[int, typer.Option(help="generated texts per category added to the history")] = 200,
                     seed: SeedOpt = 0) -> None:
    """Train the category classifier from the city's labelled history; print held-out macro-F1."""
    settings = load_settings()
    engine = _engine(settings)
    _upgrade(engine)
    _train(settings, engine, corpus, seed)


@audit_app.command("verify")
def audit_verify() -> None:
    """Walk the audit hash chain and check every signed checkpoint against it. Exit 1 if the log is broken."""
    from citybase.core.errors import CitybaseError
    from citybase.security.audit import verify

    settings = load_settings()
    engine = _engine(settings)
    try:
        with Session(engine) as s:
            v = verify(s, data_dir=settings.data_dir)
    except CitybaseError as exc:
        console.print(f"[red]{exc.detail}[/] {exc.fix or ''}")
        raise typer.Exit(1) from None
    for note in v.notes:
        console.print(f"[dim]note: {note}[/]")
    if v.ok:
        held = f"checkpoint #{v.last_good.n} at seq {v.last_good.seq} is the newest" if v.last_good else "none yet"
        console.print(f"[green]audit chain intact[/]: {v.checked} entries checked, {v.checkpoints} signed "
                      f"checkpoints hold ({held})")
        return
    console.print(f"[red]audit log cannot be trusted[/] ({len(v.problems)} problems):", soft_wrap=True)
    for p in v.problems:
        console.print(f"  [red]✗[/] {p}", soft_wrap=True)
    raise typer.Exit(1)


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign the audit chain head now (database table and anchor file) if it moved since the last checkpoint."""
    from citybase.core.errors import CitybaseError
    from citybase.security.audit import anchor_file, checkpoint

    settings = load_settings()
    engine = _engine(settings)
    try:
        cp = checkpoint(engine, data_dir=settings.data_dir)
    except CitybaseError as exc:
        console.print(f"[red]{exc.detail}[/] {exc.fix or ''}")
        raise typer.Exit(1) from None
    if cp is None:
        console.print("no new audit entries since the last checkpoint; none written")
        return
    console.print(f"[green]written[/] {cp.label} with key {cp.key_id}; anchored in {anchor_file(settings.data_dir)}")


@users_app.command("create")
def users_create(username: str, roles: Annotated[str, typer.Option(help="comma-separated roles")],
                 display_name: Annotated[str | None, typer.Option()] = None,
                 person_id: Annotated[int | None, typer.Option(help="the registry person this account is")] = None,
                 legal_entity_id: Annotated[int | None, typer.Option(help="the legal entity it acts for")] = None,
                 ) -> None:
    """Create a user and print a new token for it."""
    from citybase.core.errors import CitybaseError
    from citybase.security import service

    engine = _engine(load_settings())
    _upgrade(engine)
    try:
        with Session(engine) as s, s.begin():
            user = service.create_user(session=s, username=username, display_name=display_name or username,
                                       roles=[r.strip() for r in roles.split(",") if r.strip()],
                                       person_id=person_id, legal_entity_id=legal_entity_id)
            _, secret = service.issue_token(session=s, user=user, name="cli")
            s.flush()
            user_id = user.id  # read before the commit expires the instance
    except CitybaseError as exc:
        console.print(f"[red]{exc.detail}[/] {exc.fix or ''}")
        raise typer.Exit(1) from None
    console.print(json.dumps({"user_id": user_id, "username": username, "token": secret}, ensure_ascii=False))


@app.command()
def doctor() -> None:
    """Check the settings, data folder, database, migrations, PostGIS and bus; say what to fix. Exit 1 if any fails."""
    from citybase.kernel.doctor import render, run_checks
    from citybase.kernel.settings import check_settings

    checks = run_checks(check_settings)
    for check in checks:
        typer.echo(render(check))
    failed = [c.name for c in checks if c.ok is False]
    if failed:
        typer.echo(f"{len(failed)} problem(s): {', '.join(failed)}")
        raise typer.Exit(1)
    typer.echo("citybase can start here.")


def main() -> None:
    """Entry point of the `citybase` script."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
