// The district map: streets and grids from the platform's own GeoJSON; no tile server.
(function () {
  "use strict";
  const T = window.CITYBASE_TEXTS;
  const palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
                   "#ff9da7", "#9c755f", "#bab0ac", "#86bcb6", "#d37295", "#a0cbe8"];
  const map = L.map("map", { zoomSnap: 0.25, attributionControl: false });
  const fmt = new Intl.NumberFormat(window.CITYBASE_LANG === "en" ? "en-US" : "zh-CN");

  // Names go into the map as text nodes, never as HTML.
  function textNode(s) {
    const span = document.createElement("span");
    span.textContent = s;
    return span;
  }

  async function getJSON(url) {
    const r = await fetch(url, { headers: { Accept: "application/json", "Accept-Language": window.CITYBASE_LANG || "zh" } });
    if (!r.ok) throw new Error(url + " → " + r.status);
    return r.json();
  }

  async function loadStats() {
    const s = await getJSON("/api/v1/stats");
    document.getElementById("district-name").textContent = s.district ? s.district.name : "";
    for (const level of ["street", "community", "grid"]) {
      document.getElementById("count-" + level).textContent = fmt.format((s.areas || {})[level] || 0);
    }
    for (const k of ["buildings", "persons", "legal_entities", "departments"]) {
      document.getElementById("count-" + k).textContent = fmt.format(s[k] || 0);
    }
  }

  async function loadMap() {
    const [streets, grids] = await Promise.all([
      getJSON("/api/v1/areas/geojson?level=street"),
      getJSON("/api/v1/areas/geojson?level=grid"),
    ]);
    const colour = {};
    streets.features.forEach((f, i) => { colour[f.properties.code] = palette[i % palette.length]; });
    const gridLayer = L.geoJSON(grids, {
      style: (f) => ({ className: "cb-grid", color: "#ffffff", weight: 0.6,
                       fillColor: colour[f.properties.parent_code.slice(0, 9)] || "#999", fillOpacity: 0.55 }),
      onEachFeature: (f, layer) => layer.bindTooltip(textNode(f.properties.name), { sticky: true }),
    });
    const streetLayer = L.geoJSON(streets, {
      style: (f) => ({ className: "cb-street", color: "#0f3057", weight: 2.2, fill: !document.getElementById("show-grids").checked,
                       fillColor: colour[f.properties.code], fillOpacity: 0.5 }),
      interactive: false,
    });
    gridLayer.addTo(map);
    streetLayer.addTo(map);
    map.fitBounds(streetLayer.getBounds(), { padding: [12, 12] });
    streetLayer.eachLayer((layer) => {
      const f = layer.feature;
      L.tooltip({ permanent: true, direction: "center", className: "street-label" })
        .setLatLng(layer.getBounds().getCenter()).setContent(textNode(f.properties.name)).addTo(map);
    });
    const list = document.getElementById("street-list");
    streets.features.forEach((f) => {
      const li = document.createElement("li");
      li.style.setProperty("--c", colour[f.properties.code]);
      li.textContent = f.properties.name;
      list.appendChild(li);
    });
    document.getElementById("show-grids").addEventListener("change", (e) => {
      if (e.target.checked) { gridLayer.addTo(map); } else { map.removeLayer(gridLayer); }
      streetLayer.setStyle({ fill: !e.target.checked });
    });
    document.body.dataset.mapReady = String(grids.features.length);
  }

  let lastClick = 0;
  map.on("click", async (e) => {
    const out = document.getElementById("located");
    const mine = ++lastClick;
    let r, body;
    try {
      r = await fetch(`/api/v1/locate?lon=${e.latlng.lng.toFixed(6)}&lat=${e.latlng.lat.toFixed(6)}`);
      body = await r.json();
    } catch (err) {
      console.warn("locate failed", err);
      return;
    }
    if (mine !== lastClick) return;  // a later click already answered
    if (!r.ok) {
      map.closePopup();
      out.innerHTML = "";
      out.appendChild(document.createElement("div")).className = "outside";
      out.firstChild.textContent = T.outside;
      return;
    }
    out.innerHTML = "";
    for (const [k, label] of [["street", T.street], ["community", T.community], ["grid", T.grid]]) {
      const row = out.appendChild(document.createElement("div"));
      row.className = "row " + k;
      row.appendChild(document.createElement("span")).textContent = label;
      row.appendChild(document.createElement("b")).textContent = body[k].name;
      row.appendChild(document.createElement("code")).textContent = body[k].code;
    }
    const tip = document.createElement("div");
    tip.className = "located-popup";
    for (const line of [body.grid.name, body.grid.code]) {
      tip.appendChild(document.createElement("div")).textContent = line;
    }
    L.popup().setLatLng(e.latlng).setContent(tip).openOn(map);
  });

  loadStats().catch((err) => console.error(err));
  loadMap().catch((err) => { console.error(err); document.body.dataset.mapReady = "error"; });
})();
