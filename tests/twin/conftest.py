"""The twin's tests talk to the NGSI-LD API of the shared demo app (both engines), each test in a tenant of
its own, so that they see only what they wrote."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

CTX = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
EX = "https://example.org/city#"
USER_CTX = {"Building": EX + "Building", "Sensor": EX + "Sensor", "height": EX + "height",
            "temperature": EX + "temperature", "name": EX + "name", "owner": EX + "owner", "ex": EX}


@dataclass
class Ngsi:
    """An NGSI-LD caller in its own tenant, with the data officer's token (a writer of the twin)."""

    client: Any
    headers: dict[str, str]
    tenant: str

    def _h(self, extra: dict[str, str] | None, ld: bool) -> dict[str, str]:
        h = {**self.headers, "NGSILD-Tenant": self.tenant}
        if ld:
            h["Content-Type"] = "application/ld+json"
        elif self.linked:  # the caller's context as a Link header when the body does not carry it
            h["Link"] = f'<{LINK_URL}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
        return {**h, **(extra or {})}

    def post(self, path: str, body: Any, *, ld: bool = True, headers: dict[str, str] | None = None, **kw: Any):
        if ld:
            body = _with_context(body)
        return self.client.post("/ngsi-ld/v1" + path, content=json.dumps(body, ensure_ascii=False),
                                headers=self._h({"Content-Type": "application/json", **(headers or {})} if not ld else headers, ld), **kw)

    def send(self, method: str, path: str, body: Any = None, *, ld: bool = True, headers: dict[str, str] | None = None,
             **kw: Any):
        content = None
        if body is not None:
            content = json.dumps(_with_context(body) if ld else body, ensure_ascii=False)
        h = self._h(headers, ld and body is not None)
        if body is not None and not ld:
            h.setdefault("Content-Type", "application/json")
        return self.client.request(method, "/ngsi-ld/v1" + path, content=content, headers=h, **kw)

    def get(self, path: str, *, headers: dict[str, str] | None = None, **params: Any):
        return self.client.get("/ngsi-ld/v1" + path, params=params, headers=self._h(headers, False))

    linked: bool = False


LINK_URL = ""  # set by the fixture: the URL of USER_CTX hosted by the app


def _with_context(body: Any) -> Any:
    if isinstance(body, list):
        return [_with_context(b) for b in body]
    if isinstance(body, dict) and "@context" not in body:
        return {**body, "@context": [USER_CTX, CTX]}
    return body


@pytest.fixture
def ngsi(client, city) -> Ngsi:
    global LINK_URL
    headers = city.auth("dataofficer")
    if not LINK_URL or not _hosted(client, headers, LINK_URL):
        r = client.post("/ngsi-ld/v1/jsonldContexts", content=json.dumps({"@context": USER_CTX}),
                        headers={**headers, "Content-Type": "application/json"})
        assert r.status_code == 201, r.text
        LINK_URL = str(client.base_url).rstrip("/") + r.headers["location"]  # Location is relative
    n = Ngsi(client, headers, f"t{uuid.uuid4().hex[:10]}")
    n.linked = True
    return n


def _hosted(client, headers, url: str) -> bool:
    cid = url.rsplit("/", 1)[-1]
    return client.get(f"/ngsi-ld/v1/jsonldContexts/{cid}", headers=headers).status_code == 200


def building(n: int, **attrs: Any) -> dict[str, Any]:
    """A building entity near Xuhui (lon 121.43, lat 31.19), numbered n."""
    body = {"id": f"urn:ngsi-ld:Building:B{n}", "type": "Building",
            "name": {"type": "Property", "value": f"徐汇{n}号楼"},
            "height": {"type": "Property", "value": 10 * n, "unitCode": "MTR"},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [round(121.43 + n * 0.001, 6), 31.19]}}}
    body.update(attrs)
    return body
