"""The @context store: hosting, serving with its record, counting uses, deleting; the core context is local."""

from __future__ import annotations

import json

from tests.twin.conftest import CTX, building


def test_host_serve_count_and_delete_a_context(ngsi):
    h = {**ngsi.headers, "Content-Type": "application/json"}
    r = ngsi.client.post("/ngsi-ld/v1/jsonldContexts", content=json.dumps({"@context": {"Tower": "https://ex.org/Tower"}}),
                         headers=h)
    assert r.status_code == 201
    local_id = r.headers["location"].rsplit("/", 1)[-1]
    url = "http://testserver" + r.headers["location"]
    served = ngsi.client.get(f"/ngsi-ld/v1/jsonldContexts/{local_id}", headers=ngsi.headers)
    assert served.json() == {"@context": {"Tower": "https://ex.org/Tower"}}
    info = ngsi.client.get(f"/ngsi-ld/v1/jsonldContexts/{local_id}?details=true", headers=ngsi.headers).json()
    assert info["URL"] == url and info["kind"] == "Hosted" and info["numberOfHits"] == 0
    body = {**building(1), "type": "Tower", "@context": [url, CTX]}
    assert ngsi.post("/entities", body).status_code == 201
    info = ngsi.client.get(f"/ngsi-ld/v1/jsonldContexts/{local_id}?details=true", headers=ngsi.headers).json()
    assert info["numberOfHits"] == 1
    assert ngsi.client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Building:B1",
                           headers={**ngsi.headers, "NGSILD-Tenant": ngsi.tenant}).json()["type"] == "https://ex.org/Tower"
    listed = ngsi.client.get("/ngsi-ld/v1/jsonldContexts?kind=Hosted", headers=ngsi.headers).json()
    assert url in listed and CTX not in listed
    assert CTX in ngsi.client.get("/ngsi-ld/v1/jsonldContexts", headers=ngsi.headers).json()
    # a hosted context cannot be reloaded; deleting it makes it unknown
    r = ngsi.client.delete(f"/ngsi-ld/v1/jsonldContexts/{local_id}?reload=true", headers=ngsi.headers)
    assert r.status_code == 400 and r.json()["type"].endswith("BadRequestData")
    assert ngsi.client.delete(f"/ngsi-ld/v1/jsonldContexts/{local_id}", headers=ngsi.headers).status_code == 204
    assert ngsi.client.get(f"/ngsi-ld/v1/jsonldContexts/{local_id}", headers=ngsi.headers).status_code == 404
    bad = ngsi.client.post("/ngsi-ld/v1/jsonldContexts", content=b'{"no": "context"}', headers=h)
    assert bad.status_code == 400 and bad.json()["type"].endswith("InvalidRequest")


def test_the_core_context_is_served_without_the_internet(client, city):
    r = client.get("/ngsi-ld/v1/jsonldContexts/core", headers=city.auth("analyst"))
    assert r.status_code == 200
    ctx = r.json()["@context"]
    assert ctx["Property"] == "ngsi-ld:Property" and ctx["@vocab"] == "https://uri.etsi.org/ngsi-ld/default-context/"
