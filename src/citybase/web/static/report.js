// 我要报事: a citizen's report through the Open311 GeoReport v2 API (/open311/v2), then its progress.
(function () {
  "use strict";
  const CB = window.CB;
  const { T, el, get, api, when, say, sayError, hush } = CB;
  const $ = (id) => document.getElementById(id);
  const OPEN311 = "/open311/v2";
  let services = {}, point = null, marker = null, lastClick = 0, map = null;

  function setPoint(p, label) {
    point = p;
    $("r-point").textContent = label;
    $("r-point").dataset.lon = p ? p.lon : "";
    $("r-point").dataset.lat = p ? p.lat : "";
    $("r-clear").hidden = !p;
    if (!p && marker) { map.removeLayer(marker); marker = null; }
  }

  // Services grouped as the API groups them (GeoReport "group": the major class).
  async function loadServices() {
    const list = await get(OPEN311 + "/services.json", { anonymous: true });
    const select = $("r-service");
    const groups = new Map();
    for (const s of list) {
      services[s.service_code] = s;
      const g = s.group || "";
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g).push(s);
    }
    for (const [g, items] of groups) {
      const parent = g ? select.appendChild(el("optgroup", { label: g })) : select;
      for (const s of items) parent.appendChild(el("option", { value: s.service_code }, s.service_name));
    }
    select.addEventListener("change", () => {
      const s = services[select.value];
      $("r-service-desc").textContent = s && s.description && s.description !== s.service_name ? s.description : "";
    });
  }

  // The district map: click a point, the page names its street, community and grid.
  async function initMap() {
    map = L.map("map", { zoomSnap: 0.25, attributionControl: false });
    map.createPane("point").style.zIndex = 700;  // above the street names
    const [streets, grids] = await Promise.all([
      get("/api/v1/areas/geojson?level=street", { anonymous: true }),
      get("/api/v1/areas/geojson?level=grid", { anonymous: true }),
    ]);
    L.geoJSON(grids, { style: { className: "cb-grid", color: "#9fb3c8", weight: 0.6, fillColor: "#dfe8f1", fillOpacity: 0.6 } })
      .addTo(map);
    const streetLayer = L.geoJSON(streets, { interactive: false,
      style: { className: "cb-street", color: "#0f3057", weight: 2, fill: false } }).addTo(map);
    map.fitBounds(streetLayer.getBounds(), { padding: [12, 12] });
    streetLayer.eachLayer((layer) => {
      L.tooltip({ permanent: true, direction: "center", className: "street-label" })
        .setLatLng(layer.getBounds().getCenter()).setContent(el("span", {}, layer.feature.properties.name)).addTo(map);
    });
    map.on("click", async (e) => {
      const mine = ++lastClick;
      const lon = e.latlng.lng.toFixed(6), lat = e.latlng.lat.toFixed(6);
      let where;
      try {
        where = await get(`/api/v1/locate?lon=${lon}&lat=${lat}`, { anonymous: true });
      } catch (err) {
        where = null;
      }
      if (mine !== lastClick) return;
      if (!where) {
        setPoint(null, T.outside);
        return;
      }
      if (!marker) marker = L.circleMarker(e.latlng, { radius: 8, weight: 2, color: "#fff", fillColor: "#d62828",
        fillOpacity: 1, className: "cb-report-point", pane: "point" }).addTo(map);
      marker.setLatLng(e.latlng);
      setPoint({ lon, lat }, `${where.street.name} · ${where.community.name} · ${where.grid.name}`);
    });
    $("r-clear").addEventListener("click", () => setPoint(null, T.no_point));
    document.body.dataset.mapReady = String(grids.features.length);
  }

  async function send(e) {
    e.preventDefault();
    const box = $("report-msg");
    const form = new URLSearchParams({ api_key: CB.token() || "" });
    const v = (id) => $(id).value.trim();
    form.set("service_code", $("r-service").value);
    form.set("description", v("r-description"));
    if (point) { form.set("lat", point.lat); form.set("long", point.lon); }
    if (v("r-address")) form.set("address_string", v("r-address"));
    if (v("r-name")) form.set("first_name", v("r-name"));
    if (v("r-phone")) form.set("phone", v("r-phone"));
    $("r-send").disabled = true;
    try {
      const answer = await api("POST", OPEN311 + "/requests.json", form, { anonymous: true });
      const r = Array.isArray(answer) ? answer[0] : answer;
      const id = r.service_request_id || r.token;
      box.hidden = false;
      box.className = "msg ok";
      box.innerHTML = "";
      box.appendChild(el("span", {}, T.report_ok, " "));
      box.appendChild(el("b", { id: "r-request-id" }, id));
      if (r.service_notice) box.appendChild(el("div", { class: "msg-fix" }, T.notice + ": ", r.service_notice));
      $("l-id").value = id;
      $("report-form").reset();
      $("r-service-desc").textContent = "";
      setPoint(null, T.no_point);
    } catch (err) {
      sayError(box, err);
    } finally {
      $("r-send").disabled = false;
    }
  }

  function fact(label, value, id) {
    return [el("dt", {}, label), el("dd", id ? { id } : {}, value === null || value === undefined || value === "" ? "–" : value)];
  }

  async function lookup(e) {
    e.preventDefault();
    const id = $("l-id").value.trim(), out = $("lookup"), box = $("lookup-msg");
    if (!id) return;
    hush(box);
    out.hidden = true;
    try {
      const answer = await get(`${OPEN311}/requests/${encodeURIComponent(id)}.json?extensions=true`, { anonymous: true });
      const r = Array.isArray(answer) ? answer[0] : answer;
      out.innerHTML = "";
      const status = r.status === "closed" ? T.open311_closed : r.status === "open" ? T.open311_open : r.status;
      for (const part of [
        fact(T.request_id, r.service_request_id, "l-request-id"), fact(T.status, status, "l-status"),
        fact(T.status_notes, r.status_notes, "l-notes"), fact(T.service_name, r.service_name),
        fact(T.agency, r.agency_responsible),
        fact(T.address, r.address || (r.lat !== null && r.lat !== undefined
          ? `${Number(r.long).toFixed(5)}, ${Number(r.lat).toFixed(5)}` : null)),
        fact(T.requested, r.requested_datetime ? when(r.requested_datetime) : null),
        fact(T.expected, r.expected_datetime ? when(r.expected_datetime) : null),
        fact(T.updated, r.updated_datetime ? when(r.updated_datetime) : null),
      ]) out.append(...part);
      if (r.notes && r.notes.length) {
        out.append(el("dt", {}, T.progress), el("dd", {}, el("ol", { class: "timeline", id: "l-notes-list" },
          r.notes.map((n) => el("li", {}, el("time", {}, when(n.datetime)), el("span", { class: "act" }, n.summary),
            n.description ? el("div", { class: "why" }, n.description) : null)))));
      }
      out.dataset.status = r.status || "";
      out.hidden = false;
      out.scrollIntoView({ block: "start" });
    } catch (err) {
      sayError(box, err);
    }
  }

  async function start() {
    await CB.requireUser(null);
    await Promise.all([loadServices(), initMap()]);
    $("report-form").addEventListener("submit", send);
    $("lookup-form").addEventListener("submit", lookup);
    document.body.dataset.ready = "1";
  }

  start().catch((err) => {
    console.error(err);
    document.body.dataset.ready = "error";
  });
})();
