"""The first page, in real headless Chromium: what a person relies on when they open citybase.

The district name and the registry counts, the map of every street and grid drawn from the platform's own
GeoJSON (no tile server, no CDN: nothing leaves 127.0.0.1), Chinese first and English on request, a click
on the map naming the street, community and grid, and the grid layer that can be switched off."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from shapely.geometry import Point, shape

from tests.web.conftest import VIEWPORT, Site, Visit, assert_clean, unavailable

pytestmark = pytest.mark.browser

HAN = re.compile(r"[\u4e00-\u9fff]")


def number(text: str) -> int:
    """A count as the page shows it ("6,000" in either language) → 6000."""
    digits = re.sub(r"\D", "", text)
    assert digits, f"no number in {text!r}"
    return int(digits)


def texts(v: Visit, selector: str) -> list[str]:
    return [t.strip() for t in v.page.locator(selector).all_inner_texts()]


def map_box(v: Visit) -> dict[str, float]:
    box = v.page.locator("#map").bounding_box()
    assert box is not None
    return box


def test_chinese_page_shows_the_district_and_the_registry_counts(visit, site: Site) -> None:
    stats = site.get_json("/api/v1/stats")
    v = visit("/")
    assert v.wait_map_ready() == str(stats["areas"]["grid"])
    page = v.page

    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert "城市数字底座" in page.title()
    assert stats["district"]["name"] == "徐汇区"
    page.wait_for_function("() => document.getElementById('count-persons').textContent !== '–'")
    assert page.locator("#district-name").inner_text() == "徐汇区"
    assert page.locator("header h1").inner_text().startswith("徐汇区")

    shown = {level: number(page.locator(f"#count-{level}").inner_text()) for level in ("street", "community", "grid")}
    assert shown == {level: stats["areas"][level] for level in ("street", "community", "grid")}
    for key in ("buildings", "persons", "legal_entities", "departments"):
        assert stats[key] > 0, key
        assert number(page.locator(f"#count-{key}").inner_text()) == stats[key], key
    assert page.locator("#count-persons").inner_text() == f"{stats['persons']:,}"  # zh-CN groups by thousands

    labels = texts(v, ".counts dt")
    for label in ("街镇", "居村", "网格", "建筑", "自然人", "法人", "部门"):
        assert label in labels
    assert page.get_by_label("显示网格").is_checked()
    assert "on" in (page.locator("#lang-zh").get_attribute("class") or "")

    page.evaluate("() => document.fonts.ready")
    v.screenshot("zh.png")
    assert_clean(v)


def test_map_draws_every_street_and_grid_from_the_platforms_geojson(visit, site: Site) -> None:
    streets = site.get_json("/api/v1/areas/geojson?level=street")["features"]
    grids = site.get_json("/api/v1/areas/geojson?level=grid")["features"]
    assert streets and grids
    v = visit("/")
    assert v.wait_map_ready() == str(len(grids))
    page = v.page

    # One SVG path per street and per grid; the grids answer the mouse, the street outlines do not.
    assert page.locator(".leaflet-overlay-pane svg path.cb-street").count() == len(streets)
    assert page.locator(".leaflet-overlay-pane svg path.cb-grid").count() == len(grids)
    assert page.locator("path.cb-grid.leaflet-interactive").count() == len(grids)
    assert page.locator("path.cb-street.leaflet-interactive").count() == 0
    assert all(d and d.startswith("M") for d in page.eval_on_selector_all(
        "path.cb-street, path.cb-grid", "ps => ps.map(p => p.getAttribute('d'))"))
    assert page.locator("img.leaflet-tile").count() == 0  # no tile server

    # Every street is named on the map and in the legend.
    names = sorted(f["properties"]["name"] for f in streets)
    assert sorted(texts(v, ".leaflet-tooltip.street-label")) == names
    assert sorted(texts(v, "#street-list li")) == names

    # The map fills the space beside the side panel, the page itself does not scroll,
    # and the fitted district fills the map in at least one direction without spilling out of it.
    box = map_box(v)
    header = page.locator("header").bounding_box()
    assert header is not None
    assert box["width"] == pytest.approx(VIEWPORT["width"] - 300, abs=2)
    assert box["y"] == pytest.approx(header["height"], abs=1)
    assert box["y"] + box["height"] == pytest.approx(VIEWPORT["height"], abs=1)
    assert page.evaluate("() => document.scrollingElement.scrollHeight <= window.innerHeight")
    drawn = page.eval_on_selector_all("path.cb-street", """ps => {
        const bs = ps.map(p => p.getBoundingClientRect());
        return {left: Math.min(...bs.map(b => b.left)), right: Math.max(...bs.map(b => b.right)),
                top: Math.min(...bs.map(b => b.top)), bottom: Math.max(...bs.map(b => b.bottom))};
    }""")
    assert box["x"] <= drawn["left"] and drawn["right"] <= box["x"] + box["width"]
    assert box["y"] <= drawn["top"] and drawn["bottom"] <= box["y"] + box["height"]
    assert max((drawn["right"] - drawn["left"]) / box["width"], (drawn["bottom"] - drawn["top"]) / box["height"]) > 0.8

    # The page's own assets and data, all from this server.
    paths = {urlsplit(u).path + ("?" + urlsplit(u).query if urlsplit(u).query else "") for u in v.requests}
    for expected in ("/assets/leaflet/leaflet.js", "/assets/leaflet/leaflet.css", "/assets/citybase/app.js",
                     "/assets/citybase/app.css", "/api/v1/stats", "/api/v1/areas/geojson?level=street",
                     "/api/v1/areas/geojson?level=grid"):
        assert expected in paths
    assert_clean(v)


def test_chinese_text_renders_with_a_cjk_font_not_boxes(visit) -> None:
    v = visit("/")
    v.wait_map_ready()
    v.page.evaluate("() => document.fonts.ready")
    # Missing glyphs all draw the same .notdef box: two different characters drawn alike mean tofu.
    alike = v.page.evaluate("""() => {
        const font = getComputedStyle(document.body).font;
        const draw = (ch) => {
            const c = document.createElement("canvas"); c.width = 48; c.height = 48;
            const g = c.getContext("2d"); g.font = font.replace(/\\d+(\\.\\d+)?px/, "32px");
            g.fillText(ch, 4, 36);
            return Array.from(g.getImageData(0, 0, 48, 48).data).join(",");
        };
        return draw("徐") === draw("汇") || draw("街") === draw("网");
    }""")
    if alike:
        unavailable("Chinese glyphs render as boxes: no CJK font installed (apt-get install fonts-noto-cjk)")
    assert_clean(v)


def test_english_page_shows_english_labels(visit, site: Site) -> None:
    stats = site.get_json("/api/v1/stats")
    v = visit("/?lang=en")
    v.wait_map_ready()
    page = v.page
    assert page.locator("html").get_attribute("lang") == "en"
    assert "citybase" in page.title()
    page.wait_for_function("() => document.getElementById('count-persons').textContent !== '–'")

    labels = texts(v, ".counts dt")
    assert labels == ["Streets", "Communities", "Grids", "Buildings", "Persons", "Legal entities", "Departments"]
    assert texts(v, "aside h2") == ["Spatial base", "Base registries", "Streets"]
    assert page.get_by_label("Show grids").is_checked()
    assert "Click the map" in page.locator(".hint").inner_text()
    assert page.locator("#count-persons").inner_text() == f"{stats['persons']:,}"
    assert number(page.locator("#count-grid").inner_text()) == stats["areas"]["grid"]
    # The interface is English; only proper names (the district's, the streets') stay Chinese.
    ui = texts(v, "aside h2, .counts dt, label.toggle, .hint, header nav a#lang-en, header .sub")
    assert not [t for t in ui if HAN.search(t)]
    assert "on" in (page.locator("#lang-en").get_attribute("class") or "")
    assert page.locator("#district-name").inner_text() == stats["district"]["name"]

    page.evaluate("() => document.fonts.ready")
    v.screenshot("en.png")

    box = map_box(v)
    point = click_map(v, box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expected = site.get_json(f"/api/v1/locate?lon={point['lon']}&lat={point['lat']}")
    page.wait_for_function("() => document.querySelectorAll('#located .row').length === 3")
    assert located_rows(v) == [["Street", expected["street"]["name"], expected["street"]["code"]],
                               ["Community", expected["community"]["name"], expected["community"]["code"]],
                               ["Grid", expected["grid"]["name"], expected["grid"]["code"]]]
    page.mouse.move(VIEWPORT["width"] - 10, VIEWPORT["height"] - 10)
    v.screenshot("en-located.png")
    assert_clean(v)


def click_map(v: Visit, x: float, y: float) -> dict[str, float]:
    """Click the map at page coordinates; the lon/lat the page asked /api/v1/locate about."""
    with v.page.expect_response(lambda r: urlsplit(r.url).path == "/api/v1/locate") as answer:
        v.page.mouse.click(x, y)
    query = parse_qs(urlsplit(answer.value.url).query)
    return {"lon": float(query["lon"][0]), "lat": float(query["lat"][0])}


def located_rows(v: Visit) -> list[list[str]]:
    """What #located shows, one [label, name, code] per level."""
    return v.page.eval_on_selector_all(
        "#located .row", "rows => rows.map(r => Array.from(r.children, c => c.textContent.trim()))")


def bounds(features: list[dict[str, Any]]) -> tuple[float, float, float, float]:
    xs, ys = [], []
    for f in features:
        minx, miny, maxx, maxy = shape(f["geometry"]).bounds
        xs += [minx, maxx]
        ys += [miny, maxy]
    return min(xs), min(ys), max(xs), max(ys)


def test_clicking_the_map_centre_names_its_street_community_and_grid(visit, site: Site) -> None:
    streets = site.get_json("/api/v1/areas/geojson?level=street")["features"]
    grids = {f["properties"]["code"]: f for f in site.get_json("/api/v1/areas/geojson?level=grid")["features"]}
    v = visit("/")
    v.wait_map_ready()
    page = v.page
    assert page.locator("#located").inner_text() == ""

    box = map_box(v)
    point = click_map(v, box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    # The map is fitted to the district, so its centre is the centre of the district's bounds.
    minx, miny, maxx, maxy = bounds(streets)
    assert point["lon"] == pytest.approx((minx + maxx) / 2, abs=(maxx - minx) / 100)
    assert point["lat"] == pytest.approx((miny + maxy) / 2, abs=(maxy - miny) / 100)

    expected = site.get_json(f"/api/v1/locate?lon={point['lon']}&lat={point['lat']}")
    page.wait_for_function("code => document.getElementById('located').textContent.includes(code)",
                           arg=expected["grid"]["code"])
    assert located_rows(v) == [
        ["街镇", expected["street"]["name"], expected["street"]["code"]],
        ["居村", expected["community"]["name"], expected["community"]["code"]],
        ["网格", expected["grid"]["name"], expected["grid"]["code"]],
    ]
    # The answer is the grid the point is really in, inside its community, inside its street.
    assert shape(grids[expected["grid"]["code"]]["geometry"]).intersects(Point(point["lon"], point["lat"]))
    assert expected["grid"]["code"].startswith(expected["community"]["code"])
    assert expected["community"]["code"].startswith(expected["street"]["code"])
    assert expected["street"]["name"] in {f["properties"]["name"] for f in streets}
    popup = page.locator(".leaflet-popup-content")
    assert popup.inner_text().split("\n") == [expected["grid"]["name"], expected["grid"]["code"]]

    page.mouse.move(VIEWPORT["width"] - 10, VIEWPORT["height"] - 10)  # off the map: no hover tooltip
    page.evaluate("() => document.fonts.ready")
    v.screenshot("zh-located.png")
    assert_clean(v)


def test_clicking_outside_the_district_says_so(visit, site: Site) -> None:
    v = visit("/")
    v.wait_map_ready()
    box = map_box(v)
    # Bottom-left corner of the map: the district is fitted in the middle, this is empty background.
    point = click_map(v, box["x"] + 40, box["y"] + box["height"] - 40)
    page = v.page
    page.wait_for_function("() => document.getElementById('located').textContent !== ''")
    assert page.locator("#located").inner_text() == "不在辖区网格内"
    assert located_rows(v) == []
    assert page.locator(".leaflet-popup").count() == 0
    # The 404 of /locate (and Chromium's console line about it) is the expected answer here, not a failure.
    assert [b for b in v.bad_responses if "/api/v1/locate" in b], "the page did not ask /api/v1/locate"
    v.bad_responses = [b for b in v.bad_responses if "/api/v1/locate" not in b]
    v.console_errors = [e for e in v.console_errors if not ("404" in e and "/api/v1/locate" in e)]
    assert any(f"lon={point['lon']:.6f}" in u for u in v.requests)
    assert_clean(v)


def test_unticking_show_grids_hides_the_grid_layer(visit, site: Site) -> None:
    n_grids = len(site.get_json("/api/v1/areas/geojson?level=grid")["features"])
    v = visit("/")
    v.wait_map_ready()
    page = v.page
    grids = page.locator("path.cb-grid")
    street_fills = "() => Array.from(document.querySelectorAll('path.cb-street'), p => p.getAttribute('fill'))"
    assert grids.count() == n_grids
    assert set(page.evaluate(street_fills)) == {"none"}  # the grids carry the colour

    page.get_by_label("显示网格").uncheck()
    page.wait_for_function("() => document.querySelectorAll('path.cb-grid').length === 0")
    assert grids.count() == 0
    assert "none" not in page.evaluate(street_fills)  # the streets take the colour over
    assert page.locator(".leaflet-tooltip.street-label").count() > 0

    page.get_by_label("显示网格").check()
    page.wait_for_function(f"() => document.querySelectorAll('path.cb-grid').length === {n_grids}")
    assert set(page.evaluate(street_fills)) == {"none"}
    assert_clean(v)

