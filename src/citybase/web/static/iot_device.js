// 物联感知 · 一台设备: its facts and place, its latest values with units, a trend chart per attribute (SVG), its
// alarms with the acknowledge/clear buttons the API allows, and the data it sent that was refused, with why.
(function () {
  "use strict";
  const CB = window.CB, IOT = window.IOT;
  const { T, el, get, fmt, when, name, sayError, hush } = CB;
  const $ = (id) => document.getElementById(id);
  const ID = $("device-page").dataset.device;
  const state = { me: null, types: null, type: null, alarmLoads: 0 };

  function fact(label, ...value) {
    return [el("dt", {}, label), el("dd", {}, ...value)];
  }

  function showDevice(d, departments) {
    const t = state.type;
    $("d-head").appendChild(el("h2", { id: "d-name" }, d.name || d.device_id));
    $("d-head").appendChild(IOT.stateBadge(d.state));
    $("d-head").appendChild(el("span", { class: "tag" }, t ? t.title : d.type));
    $("d-head").dataset.state = d.state;
    $("d-facts").append(...[
      fact(T.iot_id, el("code", {}, d.device_id)),
      fact(T.iot_type, `${d.type_title} (${d.type} · ${d.sdm_type})`),
      fact(T.iot_model, d.model || "–"),
      fact(T.iot_department, departments(d.department_id)),
      fact(T.iot_grid, d.grid_code || "–"),
      fact(T.location, `${d.lon.toFixed(5)}, ${d.lat.toFixed(5)}`),
      fact(T.iot_entity, el("code", { class: "entity" }, d.entity_id)),
      fact(T.iot_interval, t ? fmt(T.iot_seconds, { n: t.interval }) : "–"),
      fact(T.iot_last_seen, when(d.last_seen_at)),
      fact(T.iot_created, when(d.created_at)),
    ].flat());
    const map = L.map("d-map", { attributionControl: false, zoomControl: false });
    map.setView([d.lat, d.lon], 14, { animate: false });
    const marker = L.circleMarker([d.lat, d.lon], { radius: 9, weight: 2, color: "#fff", fillOpacity: 1,
      fillColor: IOT.STATE_COLOUR[d.state] }).addTo(map);
    Promise.all([get("/api/v1/areas/geojson?level=grid"), get("/api/v1/areas/geojson?level=street")]).then(([grids, streets]) => {
      const own = (f) => f.properties.code === d.grid_code;
      L.geoJSON(grids, { interactive: false, style: (f) => ({ color: "#8a99ab", weight: own(f) ? 2 : 0.7,
        fillColor: own(f) ? "#fff8e1" : "#f7f9fb", fillOpacity: 1 }) }).addTo(map).bringToBack();
      L.geoJSON(streets, { interactive: false, style: { color: "#0f3057", weight: 1.6, fill: false } }).addTo(map);
      marker.bringToFront();
      document.body.dataset.mapReady = String(grids.features.length);
    }).catch((err) => console.warn("grids", err));
  }

  function showReadings(detail) {
    const t = state.type;
    const attrs = t ? t.attributes : [...new Set(detail.readings.map((r) => r.attr))].map((n) => ({ name: n, title: n, values: [] }));
    const latest = $("latest");
    for (const a of attrs) {
      const r = detail.latest[a.name];
      latest.appendChild(el("div", { class: "tile" + (r ? "" : " none"), dataset: { attr: a.name } },
        el("div", { class: "label" }, a.title, el("small", {}, " " + a.name)),
        el("div", { class: "v" }, r ? IOT.value(a, r.value) : "–"),
        el("div", { class: "extra" }, r ? when(r.t) : T.iot_no_readings)));
    }
    $("readings-count").textContent = fmt(T.iot_readings_n, { n: detail.readings.length });
    const charts = $("charts");
    const rules = t ? t.rules : [];
    for (const a of attrs) {
      const points = detail.readings.filter((r) => r.attr === a.name);
      if (!points.length) continue;
      charts.appendChild(el("figure", { class: "card chart-box", dataset: { attr: a.name } },
        el("figcaption", {}, a.title, el("small", {}, ` ${a.name} · ${fmt(T.iot_readings_n, { n: points.length })}`)),
        IOT.chart(a, points, rules.filter((r) => r.attribute === a.name))));
    }
    if (!charts.children.length) charts.appendChild(el("p", { class: "hint" }, T.iot_no_readings));
  }

  async function loadAlarms() {
    const page = await get("/api/v1/iot/alarms?" + new URLSearchParams({ device: ID, page_size: "50" }));
    const body = $("alarms").querySelector("tbody");
    body.innerHTML = "";
    for (const a of page.items) {
      body.appendChild(IOT.alarmRow(a, { me: state.me, typesBy: state.types.byCode, withDevice: false, box: $("alarm-msg"),
        done: () => Promise.all([loadAlarms(), IOT.openAlarms()]) }));
    }
    $("alarms-empty").hidden = page.items.length > 0;
    $("alarms").hidden = !page.items.length;
    document.body.dataset.alarmLoads = String(++state.alarmLoads);
  }

  async function loadDead() {
    const page = await get("/api/v1/iot/dead-letters?" + new URLSearchParams({ device: ID, page_size: "50" }));
    const body = $("dead").querySelector("tbody");
    body.innerHTML = "";
    for (const d of page.items) {
      body.appendChild(el("tr", { dataset: { id: d.id, reason: d.reason_code } },
        el("td", { class: "when" }, when(d.received_at)),
        el("td", {}, el("span", { class: "tag warn" }, name("dead_reason", d.reason_code)), el("div", { class: "reason" }, d.reason)),
        el("td", {}, name("via", d.via)),
        el("td", {}, el("code", { class: "payload", title: d.payload }, d.payload))));
    }
    $("dead-count").textContent = page.total ? `(${page.total})` : "";
    $("dead-empty").hidden = page.items.length > 0;
    $("dead").hidden = !page.items.length;
  }

  async function start() {
    const roles = ($("nav-iot") && $("nav-iot").dataset.roles || "").split(" ").filter(Boolean);
    state.me = await CB.requireUser(roles.length ? roles : null);
    let detail;
    const [types, departments] = await Promise.all([IOT.types(), CB.departments()]);
    state.types = types;
    try {
      detail = await get("/api/v1/iot/devices/" + encodeURIComponent(ID) + "?limit=2000");
    } catch (err) {
      if (err.status !== 404) throw err;
      $("d-head").appendChild(el("h2", {}, fmt(T.iot_not_found, { id: ID })));
      $("d-head").appendChild(el("a", { href: CB.langHref("/iot"), class: "button" }, T.iot_back));
      sayError($("iot-msg"), err);
      document.body.dataset.ready = "1";
      return;
    }
    state.type = types.byCode[detail.device.type] || null;
    hush($("iot-msg"));
    showDevice(detail.device, departments);
    showReadings(detail);
    await Promise.all([loadAlarms(), loadDead(), IOT.openAlarms()]);
    document.body.dataset.ready = "1";
  }

  start().catch((err) => {
    console.error(err);
    sayError($("iot-msg"), err);
    document.body.dataset.ready = "error";
  });
})();
