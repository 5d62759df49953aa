// 物联感知 · 设备: every device on the map (a dot coloured by its state; filter by type and state), the list of
// devices (paged, searchable), and their health by type and department (offline share).
(function () {
  "use strict";
  const CB = window.CB, IOT = window.IOT;
  const { T, el, get, fmt, when, name, sayError } = CB;
  const $ = (id) => document.getElementById(id);
  const PAGE_SIZE = 15;
  const state = { types: null, page: 1, pages: 1, listLoads: 0, mapLoads: 0, mapSeq: 0, listSeq: 0 };
  let map = null, layer = null, legend = null, renderer = null;

  function filters() {
    const p = new URLSearchParams();
    if ($("f-type").value) p.set("type", $("f-type").value);
    if ($("f-state").value) p.set("state", $("f-state").value);
    return p;
  }

  // ---------------------------------------------------------------- the map

  function popup(f) {
    const p = f.properties, t = state.types.byCode[p.type];
    return el("div", { class: "iot-popup" }, el("b", {}, p.name || p.id), el("div", { class: "extra" }, p.id),
      el("div", {}, t ? t.title : p.type, " · ", IOT.stateBadge(p.state)),
      el("a", { href: IOT.deviceHref(p.id), class: "open" }, T.iot_open + " →"));
  }

  function showLegend(counts) {
    const box = legend.getContainer();
    box.innerHTML = "";
    box.appendChild(el("b", {}, T.iot_legend));
    for (const s of ["online", "offline", "decommissioned"]) {
      box.appendChild(el("div", { class: "row", dataset: { state: s } }, IOT.stateDot(s), " ", name("device_state", s),
        el("span", { class: "n" }, String(counts[s] || 0))));
    }
  }

  async function loadMap() {
    const seq = ++state.mapSeq;
    const fc = await get("/api/v1/iot/devices.geojson?" + filters());
    if (seq !== state.mapSeq) return;  // a later filter answered first
    if (layer) map.removeLayer(layer);
    const counts = {}, n = fc.features.length;
    // Many devices: smaller dots; the offline ones drawn last, on top of the online crowd.
    const radius = n > 1000 ? 3 : n > 200 ? 4.5 : 6, weight = n > 200 ? 0.6 : 1.5;
    const order = { online: 0, decommissioned: 1, offline: 2 };
    fc.features.sort((a, b) => (order[a.properties.state] || 0) - (order[b.properties.state] || 0));
    layer = L.geoJSON(fc, {
      pointToLayer: (f, at) => {
        counts[f.properties.state] = (counts[f.properties.state] || 0) + 1;
        return L.circleMarker(at, { renderer, radius, weight, color: "#fff", fillOpacity: 0.95,
          fillColor: IOT.STATE_COLOUR[f.properties.state] || "#9aa7b4" });
      },
      onEachFeature: (f, m) => {
        m.bindTooltip(CB.el("span", {}, f.properties.name || f.properties.id));
        m.bindPopup(() => popup(f));
      },
    }).addTo(map);
    showLegend(counts);
    document.body.dataset.mapDevices = String(fc.features.length);
    document.body.dataset.mapLoads = String(++state.mapLoads);
  }

  async function initMap() {
    map = L.map("iot-map", { attributionControl: false, zoomSnap: 0.25, preferCanvas: true });
    renderer = L.canvas({ padding: 0.3 });
    const [streets, grids] = await Promise.all([get("/api/v1/areas/geojson?level=street"), get("/api/v1/areas/geojson?level=grid")]);
    L.geoJSON(grids, { interactive: false, style: { color: "#b6c2cf", weight: 0.5, fillColor: "#f7f9fb", fillOpacity: 1 } }).addTo(map);
    const streetLayer = L.geoJSON(streets, { interactive: false, style: { color: "#0f3057", weight: 1.6, fill: false } }).addTo(map);
    streetLayer.eachLayer((l) => {
      L.tooltip({ permanent: true, direction: "center", className: "street-label iot-street" })
        .setLatLng(l.getBounds().getCenter()).setContent(el("span", {}, l.feature.properties.name)).addTo(map);
    });
    map.fitBounds(streetLayer.getBounds(), { padding: [12, 12] });
    legend = L.control({ position: "bottomright" });
    legend.onAdd = () => el("div", { class: "iot-legend", id: "legend" });
    legend.addTo(map);
    document.body.dataset.mapReady = String(grids.features.length);
  }

  // ---------------------------------------------------------------- the list

  async function loadList() {
    const seq = ++state.listSeq;
    const p = filters();
    const q = $("f-q").value.trim();
    if (q) p.set("q", q);
    p.set("page", String(state.page));
    p.set("page_size", String(PAGE_SIZE));
    const page = await get("/api/v1/iot/devices?" + p);
    if (seq !== state.listSeq) return;
    state.pages = Math.max(1, Math.ceil(page.total / PAGE_SIZE));
    const body = $("devices").querySelector("tbody");
    body.innerHTML = "";
    for (const d of page.items) {
      body.appendChild(el("tr", { dataset: { device: d.device_id, state: d.state, type: d.type } },
        el("td", {}, el("a", { href: IOT.deviceHref(d.device_id), class: "device" }, d.name || d.device_id),
          d.name ? el("div", { class: "extra" }, d.device_id) : null),
        el("td", {}, d.type_title),
        el("td", {}, IOT.stateBadge(d.state)),
        el("td", { class: "when" }, when(d.last_seen_at))));
    }
    $("devices-empty").hidden = page.items.length > 0;
    $("list-count").textContent = fmt(T.iot_count, { n: page.total });
    $("page-of").textContent = fmt(T.iot_page, { p: state.page, n: state.pages });
    $("prev").disabled = state.page <= 1;
    $("next").disabled = state.page >= state.pages;
    document.body.dataset.listLoads = String(++state.listLoads);
  }

  // ---------------------------------------------------------------- health

  async function loadHealth(departments) {
    const rows = await get("/api/v1/iot/health");
    const body = $("health").querySelector("tbody");
    body.innerHTML = "";
    for (const h of rows) {
      const pct = Math.round(h.offline_share * 1000) / 10;
      body.appendChild(el("tr", { dataset: { type: h.type, department: h.department_id ?? "" } },
        el("td", { class: "type" }, h.type_title),
        el("td", { title: h.department || "" }, h.department_id === null ? "–" : departments(h.department_id)),
        el("td", { class: "n" }, String(h.total)), el("td", { class: "n" }, String(h.online)),
        el("td", { class: "n" }, String(h.offline)),
        el("td", {}, el("span", { class: "share" }, el("span", { class: "bar" + (pct >= 20 ? " high" : "") },
          el("span", { style: `width:${Math.min(100, pct)}%` })), el("span", { class: "pct" }, pct + "%")))));
    }
  }

  // ---------------------------------------------------------------- start

  async function start() {
    const roles = ($("nav-iot") && $("nav-iot").dataset.roles || "").split(" ").filter(Boolean);
    await CB.requireUser(roles.length ? roles : null);
    const [types, departments] = await Promise.all([IOT.types(), CB.departments()]);
    state.types = types;
    for (const t of state.types.list) $("f-type").appendChild(el("option", { value: t.code }, t.title));
    await initMap();
    const reload = () => { state.page = 1; return Promise.all([loadMap(), loadList()]); };
    const report = (err) => sayError($("iot-msg"), err);
    for (const id of ["f-type", "f-state"]) $(id).addEventListener("change", () => reload().catch(report));
    let typing = null;
    $("f-q").addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(() => { state.page = 1; loadList().catch(report); }, 250);
    });
    $("filters").addEventListener("submit", (e) => { e.preventDefault(); state.page = 1; loadList().catch(report); });
    $("prev").addEventListener("click", () => { state.page -= 1; loadList().catch(report); });
    $("next").addEventListener("click", () => { state.page += 1; loadList().catch(report); });
    await Promise.all([loadMap(), loadList(), loadHealth(departments), IOT.openAlarms()]);
    document.body.dataset.ready = "1";
  }

  start().catch((err) => {
    console.error(err);
    sayError($("iot-msg"), err);
    document.body.dataset.ready = "error";
  });
})();
