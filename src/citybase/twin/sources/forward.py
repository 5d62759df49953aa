"""Asking a registered context source (another NGSI-LD broker) over HTTP, as a distributed query does.

Forwarded requests carry ``local=true`` so the source answers from its own entities and never forwards
again (no loops between twins that register each other), the caller's @context as a Link header so the
answer comes back in the caller's names, the registration's ``tenant`` and its ``contextSourceInfo`` as
headers. A source that fails or is slow is left out of the answer (the caller gets a warning header)."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from citybase.twin.ldcontext import JSONLD_REL

log = logging.getLogger("citybase.twin")
TIMEOUT = 5.0


def ask(endpoint: str, path: str, params: list[tuple[str, str]], *, link: str, body: dict[str, Any]) -> Any | None:
    """GET ``endpoint/ngsi-ld/v1/path`` from a source; the decoded JSON answer, or None (logged) on failure."""
    query = urllib.parse.urlencode([*[(k, v) for k, v in params if k != "local"], ("local", "true")])
    url = f"{endpoint}/ngsi-ld/v1/{path}?{query}"
    headers = {"Accept": "application/json", "Link": f'<{link}>; rel="{JSONLD_REL}"; type="application/ld+json"'}
    if body.get("tenant"):
        headers["NGSILD-Tenant"] = str(body["tenant"])
    for kv in body.get("contextSourceInfo", []):
        if kv["key"].lower() not in ("host", "content-length", "link"):
            headers[kv["key"]] = kv["value"]
    try:
        req = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:  # noqa: S310 - http(s) checked at registration
            return json.loads(resp.read(50_000_001))
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            log.warning("context source %s answered %s for %s", endpoint, exc.code, path)
        return None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.warning("context source %s unreachable: %s", endpoint, exc)
        return None


def merge(local: list[dict[str, Any]], remote: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entities from several brokers as one list: the same id merged, attributes the local one lacks added."""
    by_id: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for e in [*local, *remote]:
        if not isinstance(e, dict) or "id" not in e:
            continue
        if e["id"] in by_id:
            base = by_id[e["id"]]
            for k, v in e.items():
                base.setdefault(k, v)
        else:
            by_id[e["id"]] = dict(e)
            order.append(e["id"])
    return [by_id[i] for i in order]
