"""Anything a user can send gets a problem+json answer saying what to fix, never a 500."""


def _is_problem(r, status):
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def test_unknown_route(client):
    body = _is_problem(client.get("/api/v1/no-such-thing"), 404)
    assert "/docs" in body["fix"]


def test_wrong_method(client):
    _is_problem(client.delete("/api/v1/stats"), 405)


def test_invalid_query_parameter_names_the_parameter(client):
    body = _is_problem(client.get("/api/v1/locate", params={"lon": "east", "lat": 31.2}), 422)
    assert "query parameter 'lon'" in body["detail"]
    assert body["errors"][0]["where"] == "query parameter 'lon'"


def test_missing_parameter(client):
    body = _is_problem(client.get("/api/v1/locate", params={"lat": 31.2}), 422)
    assert "lon" in body["detail"]


def test_malformed_json_body(client, city):
    r = client.post("/api/v1/persons", content=b"{not json", headers={**city.auth("dataofficer"),
                                                                        "content-type": "application/json"})
    _is_problem(r, 422)


def test_out_of_range_page_size(client, city):
    body = _is_problem(client.get("/api/v1/persons", params={"page_size": 100000}, headers=city.auth("dispatcher")), 422)
    assert "page_size" in body["detail"]


def test_unknown_area_code(client):
    body = _is_problem(client.get("/api/v1/areas/999"), 404)
    assert "999" in body["detail"]


def test_out_of_range_coordinates(client):
    _is_problem(client.get("/api/v1/locate", params={"lon": 500, "lat": 31.2}), 422)


def test_docs_are_served_with_local_assets(client):
    html = client.get("/docs").text
    assert "cdn" not in html.lower() and "/static-offline-docs/swagger-ui-bundle.js" in html
    assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
    assert client.get("/openapi.json").json()["info"]["title"] == "citybase"


def test_a_body_that_is_not_utf8_is_a_422_like_malformed_json(client, city):
    r = client.post("/api/v1/ops/classify", content=b'{"text": "\xff\xfe"}',
                    headers={**city.auth("dispatcher"), "content-type": "application/json"})
    body = _is_problem(r, 422)
    assert "body" in body["detail"]


def _operations(client):
    for path, ops in client.get("/openapi.json").json()["paths"].items():
        for method, op in ops.items():
            yield method.upper(), path, op


def _is_problem_schema(response):
    return response["content"]["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/ProblemDetails"}


def test_the_openapi_documents_every_error_status_as_problem_json(client):
    spec = client.get("/openapi.json").json()
    assert {"type", "title", "status", "detail"} <= set(spec["components"]["schemas"]["ProblemDetails"]["required"])
    from citybase.api.app import api_routes

    public = {(m, r.path) for r in api_routes(client.app) if r.allow and r.allow.public for m in r.methods}
    assert ("GET", "/api/v1/health") in public and ("GET", "/api/v1/persons") not in public
    seen = 0
    for method, path, op in _operations(client):
        if not path.startswith("/api/"):
            continue
        seen += 1
        r = op["responses"]
        for status in ("401", "422", "503"):
            assert status in r and _is_problem_schema(r[status]), (method, path, status)
        assert "application/json" not in r["422"]["content"], (method, path)
        assert ("403" in r) == ((method, path) not in public), (method, path)
        if "{" in path:
            assert _is_problem_schema(r["404"]), (method, path)
        if method != "GET":
            assert _is_problem_schema(r["409"]), (method, path)
    assert seen > 50
    ops = {(m, p): op for m, p, op in _operations(client)}
    assert "403" in ops[("GET", "/api/v1/persons")]["responses"]
    assert "403" in ops[("POST", "/api/v1/ops/incidents/{incident_id}/close")]["responses"]
    assert "409" in ops[("POST", "/api/v1/ops/incidents/{incident_id}/close")]["responses"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_the_openapi_documents_open311_errors_in_the_spec_format(client):
    for method, path, op in _operations(client):
        if path.startswith("/open311/"):
            for status in ("400", "403", "404"):
                assert "application/json" in op["responses"][status]["content"], (method, path, status)
