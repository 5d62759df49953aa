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
