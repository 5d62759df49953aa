"""`citybase licences …`: verify a licence offline (signature with the published keys, no server), and
online too (revocation and expiry) with ``--online``."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from citybase.licences import signing

app = typer.Typer(help="电子证照: electronic licences.", no_args_is_help=True)
console = Console()


def _keys_from(path: Path | None) -> dict[str, signing.PublicKey]:
    if path is not None:
        items = json.loads(path.read_text())
        items = items if isinstance(items, list) else items.get("keys", [])
        return {k["kid"]: signing.PublicKey.of_raw(signing.unb64url(k["x"])) for k in items if k.get("alg") == "Ed25519"}
    # on the server's own machine: the deployment's keys (never made here: a verifier creates no key)
    import os

    from citybase.core.settings import load_settings

    if os.environ.get(signing.ENV_KEY) or signing.key_file(load_settings().data_dir).exists():
        return dict(signing.load_keys().public)
    return {}


def _post_json(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - the URL the user named
        return json.loads(r.read().decode("utf-8"))


@app.command("verify")
def verify(file: Annotated[str, typer.Argument(help="a file holding the token or the verifier link (- for stdin)")],
           keys: Annotated[Path | None, typer.Option(help="the published keys (JSON of GET /api/v1/licences/keys)")] = None,
           online: Annotated[str | None, typer.Option(help="the platform's base URL: also check revocation and expiry")] = None) -> None:
    """Verify a licence's Ed25519 signature offline; with --online also its status in the register.
    Exits 0 when it holds (and is valid online), 1 otherwise."""
    text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    token = signing.extract_token(text)
    if token is None:
        console.print("[red]no licence token (CBL1.…) in the input[/]")
        raise typer.Exit(1)
    published = _keys_from(keys)
    if not published and online:
        with urllib.request.urlopen(online.rstrip("/") + "/api/v1/licences/keys", timeout=10) as r:  # noqa: S310
            published = {k["kid"]: signing.PublicKey.of_raw(signing.unb64url(k["x"])) for k in json.loads(r.read())}
    checked = signing.verify_token(token, published)
    ok = checked.ok
    table = Table("", "", title="电子证照 licence", show_header=False)
    table.add_row("signature (offline)", f"[green]valid (Ed25519, key {checked.kid})[/]" if ok else f"[red]{checked.reason}[/]")
    if checked.content:
        c = checked.content
        for label, key in (("identifier", "id"), ("type", "tn"), ("holder", "h"), ("holder code", "hc"),
                           ("issuer", "isn"), ("issued", "iat"), ("expires", "exp")):
            table.add_row(label, str(c.get(key) if c.get(key) is not None else "长期 long-term"))
        for k, v in (c.get("f") or {}).items():
            table.add_row(f"  {k}", str(v))
    if online and ok:
        try:
            res = _post_json(online.rstrip("/") + "/api/v1/licences/verify", {"token": token})
        except (urllib.error.URLError, OSError) as exc:
            table.add_row("status (online)", f"[yellow]unreachable: {exc}[/]")
            ok = False
        else:
            status = res.get("status") if res.get("registered") else "not in the register"
            table.add_row("status (online)", f"[green]{status}[/]" if res.get("ok") else f"[red]{status}[/]")
            ok = bool(res.get("ok"))
    console.print(table)
    raise typer.Exit(0 if ok else 1)


@app.command("keys")
def keys_cmd() -> None:
    """Print this deployment's public keys as JSON (hand them to offline verifiers)."""
    typer.echo(json.dumps([k.as_json() for k in signing.load_keys().public.values()], indent=2))
