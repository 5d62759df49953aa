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


# the operation groups a registration's ``operations`` may name (§4.20), as far as queries go
GROUPS = {
    "federationOps": {"retrieveEntity", "queryEntity", "queryBatch", "retrieveEntityTypes",
                      "retrieveEntityTypeDetails", "retrieveEntityTypeInfo", "retrieveAttrTypes",
                      "retrieveAttrTypeDetails", "retrieveAttrTypeInfo"},
    "retrieveOps": {"retrieveEntity", "queryEntity"},
    "redirectionOps": {"retrieveEntity", "queryEntity", "queryBatch", "retrieveTemporal", "queryTemporal",
                       "retrieveEntityTypes", "retrieveEntityTypeDetails", "retrieveEntityTypeInfo",
                       "retrieveAttrTypes", "retrieveAttrTypeDetails", "retrieveAttrTypeInfo"},
}


def allows(body: dict[str, Any], op: str) -> bool:
    """Whether the registration's ``operations`` (none: every query) include ``op``."""
    ops = body.get("operations")
    if not ops:
        return True
    names = ops if isinstance(ops, list) else [ops]
    return any(n == op or op in GROUPS.get(n, ()) for n in names if isinstance(n, str))


def ask(endpoint: str, path: str, params: list[tuple[str, str]], *, link: str, body: dict[str, Any],
        payload: Any = None) -> Any | None:
    """GET (or, with a payload, POST) ``endpoint/ngsi-ld/v1/path`` of a source; the decoded JSON answer, or None
    (logged) on failure."""
    query = urllib.parse.urlencode([*[(k, v) for k, v in params if k != "local"], ("local", "true")], safe=":,")
    url = f"{endpoint}/ngsi-ld/v1/{path}?{query}"
    headers = {"Accept": "application/json", "Link": f'<{link}>; rel="{JSONLD_REL}"; type="application/ld+json"'}
    if body.get("tenant"):
        headers["NGSILD-Tenant"] = str(body["tenant"])
    for kv in body.get("contextSourceInfo", []):
        if kv["key"].lower() not in ("host", "content-length", "link", "content-type"):
            headers[kv["key"]] = kv["value"]
    data = None
    if payload is not None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        headers["Content-Type"] = "application/json"
    try:
        req = urllib.request.Request(url, headers=headers, data=data, method="POST" if data is not None else "GET")
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:  # noqa: S310 - http(s) checked at registration
            return json.loads(resp.read(50_000_001))
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            log.warning("context source %s answered %s for %s", endpoint, exc.code, path)
        return None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.warning("context source %s unreachable: %s", endpoint, exc)
        return None


def entities_of(got: Any) -> list[dict[str, Any]]:
    """A source's answer as a list of entities (some answer a query with one entity, not a list)."""
    if isinstance(got, dict):
        got = [got]
    return [e for e in got if isinstance(e, dict) and "id" in e] if isinstance(got, list) else []


def query_body(params: list[tuple[str, str]], types: list[str]) -> dict[str, Any]:
    """A GET query's parameters as the Query body of ``POST /entityOperations/query``."""
    p = dict(params)
    ids = [i for i in p.get("id", "").split(",") if i]
    type_text = p.get("type") or ",".join(types)
    entities = [{"id": i, **({"type": type_text} if type_text else {})} for i in ids] or \
        ([{"type": type_text}] if type_text else [])
    out: dict[str, Any] = {"type": "Query"}
    if entities:
        out["entities"] = entities
    if p.get("attrs"):
        out["attrs"] = p["attrs"].split(",")
    for key in ("q", "scopeQ", "lang"):
        if p.get(key):
            out[key] = p[key]
    if p.get("georel"):
        out["geoQ"] = {k: p[k] for k in ("georel", "geometry", "coordinates", "geoproperty") if p.get(k)}
    return out


def query_params(payload: dict[str, Any]) -> list[tuple[str, str]]:
    """A Query body as the parameters of ``GET /entities`` (its first entity selector)."""
    out: list[tuple[str, str]] = []
    ents = [e for e in payload.get("entities") or () if isinstance(e, dict)]
    ids = [e["id"] for e in ents if isinstance(e.get("id"), str)]
    types = sorted({e["type"] for e in ents if isinstance(e.get("type"), str)})
    if ids:
        out.append(("id", ",".join(ids)))
    if types:
        out.append(("type", ",".join(types)))
    if isinstance(payload.get("attrs"), list):
        out.append(("attrs", ",".join(str(a) for a in payload["attrs"])))
    for key in ("q", "scopeQ", "lang"):
        if isinstance(payload.get(key), str):
            out.append((key, payload[key]))
    geo = payload.get("geoQ")
    if isinstance(geo, dict):
        out.extend((k, v if isinstance(v, str) else json.dumps(v)) for k, v in geo.items()
                   if k in ("georel", "geometry", "coordinates", "geoproperty"))
    return out


def merge(local: list[dict[str, Any]], remote: list[dict[str, Any]], *, first: bool = False) -> list[dict[str, Any]]:
    """Entities from several brokers as one list, in the order first seen: the same id merged, the attributes
    the local one lacks added; ``first`` (an exclusive or redirect source): the remote's attributes win."""
    by_id: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for is_remote, e in [*((False, x) for x in local), *((True, x) for x in remote)]:
        if not isinstance(e, dict) or "id" not in e:
            continue
        if e["id"] in by_id:
            base = by_id[e["id"]]
            for k, v in e.items():
                if first and is_remote and k not in ("id", "type", "@context"):
                    base[k] = v
                else:
                    base.setdefault(k, v)
        else:
            by_id[e["id"]] = dict(e)
            order.append(e["id"])
    return [by_id[i] for i in order]
