"""`citybase twin …`: preload JSON-LD @contexts so that no request fetches one at run time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(help="数字孪生: the NGSI-LD twin.", no_args_is_help=True)
contexts_app = typer.Typer(help="JSON-LD @contexts kept by the twin.", no_args_is_help=True)
app.add_typer(contexts_app, name="contexts")
console = Console()


@app.command("sync")
def sync(tenant: Annotated[str, typer.Option(help="the NGSILD-Tenant to write into (default: the default tenant)")] = ""
         ) -> None:
    """Write the city into the twin: every area, building and incident as an NGSI-LD entity (only what changed),
    and delete areas and buildings the spatial base no longer has. One transaction; run it again at will."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    from citybase.core.settings import load_settings
    from citybase.storage.db import make_engine, make_sessionmaker, transaction
    from citybase.twin.city import city_call, sync_city

    engine = make_engine(load_settings().database_url)
    with Progress(TextColumn("{task.description:<20}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total or None)
            bar.update(tasks[what], completed=done, total=max(total, done) or None)

        with transaction(make_sessionmaker(engine)) as session:
            counts = sync_city(session=session, call=city_call(tenant), progress=progress)
    console.print("  ".join(f"{k} {v:,}" for k, v in counts.items()))
    if counts["failed"]:
        console.print("[red]some entities were not written; the log says why[/red]")
        raise typer.Exit(1)


@contexts_app.command("load")
def load(folder: Annotated[Path, typer.Argument(help="a folder of .json/.jsonld context documents, and a map.json "
                                                     "{URL: file name} saying which URL each one answers for")]) -> None:
    """Preload every @context of FOLDER (kind Cached), replacing the ones with the same URL.

    Each document needs an @context member. Its URL comes from FOLDER/map.json; without one, a document
    that names its own URL in a top-level "url" member is taken at it, and the others are refused."""
    from citybase.core.settings import load_settings
    from citybase.storage.db import make_engine, make_sessionmaker, transaction
    from citybase.twin import service
    from citybase.twin.errors import NgsiError
    from citybase.twin.ldcontext import validate_document

    if not folder.is_dir():
        console.print(f"[red]{folder} is not a folder[/red]")
        raise typer.Exit(2)
    mapping: dict[str, str] = {}
    if (folder / "map.json").exists():
        try:
            mapping = {url: name for url, name in json.loads((folder / "map.json").read_text("utf-8")).items()}
        except (ValueError, AttributeError):
            console.print(f"[red]{folder / 'map.json'} must be a JSON object {{URL: file name}}[/red]")
            raise typer.Exit(2) from None
    files: dict[str, dict] = {}
    problems: list[str] = []
    by_name = {v: k for k, v in mapping.items()}
    for path in sorted(folder.iterdir()):
        if path.name == "map.json" or path.suffix not in (".json", ".jsonld"):
            continue
        try:
            doc = validate_document(str(path), path.read_bytes())
        except NgsiError as exc:
            problems.append(f"{path.name}: {exc.detail}")
            continue
        url = by_name.get(path.name) or (doc.get("url") if isinstance(doc.get("url"), str) else None)
        if not url:
            problems.append(f"{path.name}: no URL for it in map.json")
            continue
        files[url] = {"@context": doc["@context"]}
    for url, name in mapping.items():
        if url not in files and not any(p.startswith(name + ":") for p in problems):
            problems.append(f"map.json names {name}, which is not in {folder}")
    settings = load_settings()
    engine = make_engine(settings.database_url)
    with transaction(make_sessionmaker(engine)) as session:
        n = service.load_contexts(session=session, files=files)
    for p in problems:
        console.print(f"[yellow]skipped {p}[/yellow]")
    console.print(f"loaded {n} @context(s) into the twin" + (f"; {len(problems)} skipped" if problems else ""))
    for url in sorted(files):
        console.print(f"  {url}")
    if problems:
        raise typer.Exit(1)
