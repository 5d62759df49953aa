// Shared by the IoT pages (物联感知): the device types and their units, values as people read them, severity
// and state badges, an alarm's row with the acknowledge/clear buttons the API allows, and the trend chart,
// drawn here as SVG (no chart library). Everything shown comes from /api/v1/iot.
(function () {
  "use strict";
  const CB = window.CB;
  const { T, LANG, el, get, api, fmt, when, name, say, sayError } = CB;
  // The roles iot/router.py lets acknowledge and clear alarms (OPERATORS); tests/web checks they agree.
  const OPERATORS = ["admin", "dispatcher", "handler"];
  const STATE_COLOUR = { online: "#2a9d55", offline: "#e15759", decommissioned: "#9aa7b4" };
  const SEVERITY_COLOUR = { critical: "#d62828", major: "#f28e2b", minor: "#e9b400", warning: "#4e79a7" };
  // UN/CEFACT common codes (the types' units) as symbols; C62 ("one") is a ratio, shown as a percentage.
  const UNITS = { GQ: "µg/m³", "2N": "dB", MTR: "m", CEL: "°C", P1: "%", KMH: "km/h", MQH: "m³/h", MTQ: "m³",
                  DD: "°", MPA: "MPa", E50: "", C62: "%" };
  const SVG = "http://www.w3.org/2000/svg";
  const num = new Intl.NumberFormat(LANG === "en" ? "en-US" : "zh-CN", { maximumFractionDigits: 3 });

  let typesP = null;
  // The device types by code, each with its attributes by name (read once per page).
  function types() {
    if (!typesP) {
      typesP = get("/api/v1/iot/types").then((list) => {
        const byCode = {};
        for (const t of list) byCode[t.code] = { ...t, attr: Object.fromEntries(t.attributes.map((a) => [a.name, a])) };
        return { list, byCode };
      });
    }
    return typesP;
  }

  const isRatio = (a) => a && a.unit === "C62";
  const unitOf = (a) => (a && a.unit ? (a.unit in UNITS ? UNITS[a.unit] : a.unit) : "");

  // A reading's value as text with its unit: "0.12 m", "80%", "有".
  function value(a, v) {
    if (v === null || v === undefined) return "–";
    if (typeof v === "string") return name("reading_value", v);
    if (isRatio(a)) return num.format(Math.round(v * 1000) / 10) + "%";
    const u = unitOf(a);
    return num.format(v) + (u ? (u === "%" || u === "°" ? u : " " + u) : "");
  }

  const stateDot = (state) => el("span", { class: "dot", style: `background:${STATE_COLOUR[state] || "#9aa7b4"}`,
    title: name("device_state", state) });
  const stateBadge = (state) => el("span", { class: "badge d-" + state }, stateDot(state), " ", name("device_state", state));
  const severity = (sev) => el("span", { class: "sev sev-" + sev, style: `--c:${SEVERITY_COLOUR[sev] || "#9aa7b4"}` },
    name("severity", sev));
  const alarmState = (a) => el("span", { class: "badge a-" + a.state }, name("alarm_state", a.state));

  function deviceHref(id) { return CB.langHref("/iot/devices/" + encodeURIComponent(id)); }

  // Who and when an alarm was acknowledged or cleared (or that its readings cleared it).
  function alarmHistory(a) {
    const out = [];
    if (a.acknowledged_at) out.push(el("div", { class: "extra" }, T.iot_ack + " · ", fmt(T.iot_by, { who: a.acknowledged_by, t: when(a.acknowledged_at) })));
    if (a.cleared_at) out.push(el("div", { class: "extra" }, T.iot_clear + " · ",
      a.cleared_by ? fmt(T.iot_by, { who: a.cleared_by, t: when(a.cleared_at) }) : `${T.iot_auto} ${when(a.cleared_at)}`));
    return out;
  }

  function incidentCell(a) {
    if (!a.incident) return "–";
    const href = CB.langHref("/ops/workbench") + "#incident-" + a.incident.id;
    return el("a", { href, class: "incident" }, a.incident.code || "#" + a.incident.id,
      a.incident.status ? el("span", { class: "badge s-" + a.incident.status }, name("status", a.incident.status)) : null);
  }

  // One alarm as a table row; the buttons only for a person whose roles the API allows, only where they apply.
  // done(after) is called with the alarm the API answered; box shows the refusal or the confirmation.
  function alarmRow(a, { me, typesBy, withDevice, box, done }) {
    const t = typesBy[a.device_type];
    const attr = t && a.attribute ? t.attr[a.attribute] : null;
    const mayAct = me && me.roles.some((r) => OPERATORS.includes(r));
    const act = (what) => async (e) => {
      const b = e.currentTarget;
      b.disabled = true;
      try {
        const after = await api("POST", `/api/v1/iot/alarms/${a.id}/${what}`);
        say(box, "ok", fmt(what === "acknowledge" ? T.iot_acked : T.iot_cleared, { id: a.id }));
        await done(after);
      } catch (err) {
        sayError(box, err);
        b.disabled = false;
      }
    };
    const buttons = mayAct ? [
      a.state === "active" ? el("button", { type: "button", class: "primary ack", onclick: act("acknowledge") }, T.iot_ack) : null,
      a.state !== "cleared" ? el("button", { type: "button", class: "clear", onclick: act("clear") }, T.iot_clear) : null,
    ] : [];
    return el("tr", { dataset: { id: a.id, state: a.state, severity: a.severity, device: a.device_id } },
      el("td", {}, severity(a.severity)),
      withDevice ? el("td", {}, el("a", { href: deviceHref(a.device_id), class: "device" }, a.device_name),
        el("div", { class: "extra" }, a.device_id, " · ", t ? t.title : a.device_type)) : null,
      el("td", {}, a.rule_title),
      el("td", { class: "value" }, a.attribute ? value(attr, a.value) : "–"),
      el("td", { class: "when" }, el("time", { datetime: a.raised_at }, when(a.raised_at))),
      el("td", {}, alarmState(a), alarmHistory(a)),
      el("td", {}, incidentCell(a)),
      el("td", { class: "buttons" }, buttons));
  }

  // The count of alarms not yet cleared, beside the 告警 tab.
  async function openAlarms() {
    const badge = document.getElementById("open-alarms");
    if (!badge) return;
    const page = await get("/api/v1/iot/alarms?state=open&page_size=1");
    badge.textContent = String(page.total);
    badge.title = fmt(T.iot_open_alarms, { n: page.total });
    badge.hidden = page.total === 0;
  }

  // ------------------------------------------------------------------ the trend chart (SVG)

  function svg(tag, attrs, ...children) {
    const n = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) n.setAttribute(k, v);
    for (const c of children.flat()) if (c) n.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    return n;
  }

  const hhmm = new Intl.DateTimeFormat(LANG === "en" ? "en-GB" : "zh-CN", { timeZone: "Asia/Shanghai", hour: "2-digit",
    minute: "2-digit", hourCycle: "h23" });
  const mmdd = new Intl.DateTimeFormat(LANG === "en" ? "en-GB" : "zh-CN", { timeZone: "Asia/Shanghai", month: "2-digit",
    day: "2-digit" });

  // Up to n "nice" tick values between lo and hi (1, 2, 5 × 10^k steps).
  function ticks(lo, hi, n) {
    const span = hi - lo || Math.abs(hi) || 1;
    const raw = span / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.round(v / step) * step);
    return out;
  }

  // Times on the axis at round steps (a minute to a week), aligned in Shanghai time (UTC+8, no DST).
  function timeTicks(t0, t1, n) {
    const M = 60000, steps = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080].map((m) => m * M);
    const step = steps.find((s) => (t1 - t0) / s <= n) || steps[steps.length - 1];
    const shift = 8 * 60 * M, out = [];
    for (let t = Math.ceil((t0 + shift) / step) * step - shift; t <= t1; t += step) out.push(t);
    return out;
  }

  // The readings of one attribute over time: a line for a number (with the rules' limits dashed), a band of
  // coloured states for an enumerated attribute. points: [{t, value}] in any order.
  function chart(attr, points, rules) {
    const enumerated = Boolean(attr.values && attr.values.length);
    const W = 560, H = enumerated ? 100 : 180, L = 52, R = 12, TOP = 12, B = 26;
    const pts = points.map((p) => ({ t: new Date(p.t).getTime(), v: p.value, iso: p.t })).sort((a, b) => a.t - b.t);
    let t0 = pts[0].t, t1 = pts[pts.length - 1].t;
    if (t1 - t0 < 60000) { t0 -= 5 * 60000; t1 += 5 * 60000; }  // one moment: ten minutes around it
    const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "data-attr": attr.name,
      "data-points": String(pts.length), "aria-label": `${attr.title} · ${fmt(T.iot_readings_n, { n: pts.length })}` });
    const sameDay = mmdd.format(t0) === mmdd.format(t1);
    const xt = timeTicks(t0, t1, 5);
    const xLabel = (t) => (sameDay ? hhmm.format(t) : `${mmdd.format(t)} ${hhmm.format(t)}`);
    const axis = svg("g", { class: "axis" });
    root.appendChild(axis);
    const label = (p) => `${CB.when(p.iso)}  ${value(attr, p.v)}`;

    if (enumerated) {  // one band, a colour per state
      const palette = ["#2a9d55", "#e15759", "#4e79a7", "#f28e2b", "#9aa7b4", "#b07aa1"];
      const bad = new Set(rules.flatMap((r) => r.equals || []));
      const colour = (v) => (bad.has(v) ? "#d62828" : palette[Math.max(0, attr.values.indexOf(v)) % palette.length]);
      const y0 = TOP + 10, h = H - B - TOP - 14;
      pts.forEach((p, i) => {
        const xa = x(p.t), xb = i + 1 < pts.length ? x(pts[i + 1].t) : W - R;
        root.appendChild(svg("rect", { x: xa, y: y0, width: Math.max(2, xb - xa), height: h, fill: colour(p.v), class: "pt" },
          svg("title", {}, label(p))));
      });
      const legend = svg("g", { class: "legend" });
      let lx = L;
      for (const v of attr.values.filter((v) => pts.some((p) => p.v === v))) {
        legend.appendChild(svg("rect", { x: lx, y: 2, width: 10, height: 10, fill: colour(v) }));
        const text = name("reading_value", v);
        legend.appendChild(svg("text", { x: lx + 14, y: 11 }, text));
        lx += 24 + text.length * 12;
      }
      root.appendChild(legend);
    } else {
      const all = rules.filter((r) => r.kind === "threshold" && r.attribute === attr.name)
        .flatMap((r) => [r.above, r.below]).filter((v) => v !== null && v !== undefined);
      const vals = pts.map((p) => p.v).filter((v) => typeof v === "number");
      const vlo = Math.min(...vals), vhi = Math.max(...vals), vspan = vhi - vlo || Math.abs(vhi) * 0.1 || 1;
      // A limit far from the values would flatten them: drawn only when near, else named at the top.
      const limits = all.filter((v) => v >= vlo - 1.5 * vspan && v <= vhi + 1.5 * vspan);
      const far = all.filter((v) => !limits.includes(v));
      let lo = Math.min(vlo, ...limits), hi = Math.max(vhi, ...limits);
      const hasMin = attr.min !== null && attr.min !== undefined;
      if (hasMin && lo - attr.min < (hi - lo) * 0.3) lo = attr.min;  // near the floor (0 %, 0 m): start there
      if (lo === hi) { lo -= Math.abs(lo) * 0.1 || 1; hi += Math.abs(hi) * 0.1 || 1; }
      const pad = (hi - lo) * 0.08;
      lo = hasMin ? Math.max(attr.min, lo - pad) : lo - pad;
      hi += pad;
      for (const v of far) {
        root.appendChild(svg("text", { x: W - R, y: TOP, "text-anchor": "end", class: "limit-label" },
          `${T.iot_limit} ${value(attr, v)} ${v > vhi ? "↑" : "↓"}`));
      }
      const y = (v) => TOP + (1 - (v - lo) / (hi - lo)) * (H - TOP - B);
      for (const v of ticks(lo, hi, 5)) {
        if (v < lo || v > hi) continue;
        axis.appendChild(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
        axis.appendChild(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, isRatio(attr) ? Math.round(v * 100) + "%" : num.format(v)));
      }
      for (const lim of limits) {
        root.appendChild(svg("line", { x1: L, x2: W - R, y1: y(lim), y2: y(lim), class: "limit" }));
        root.appendChild(svg("text", { x: W - R, y: y(lim) - 4, "text-anchor": "end", class: "limit-label" },
          `${T.iot_limit} ${value(attr, lim)}`));
      }
      const d = pts.filter((p) => typeof p.v === "number").map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ");
      root.appendChild(svg("path", { d, class: "line" }));
      for (const p of pts) {
        if (typeof p.v !== "number") continue;
        root.appendChild(svg("circle", { cx: x(p.t).toFixed(1), cy: y(p.v).toFixed(1), r: pts.length > 60 ? 1.5 : 3, class: "pt" },
          svg("title", {}, label(p))));
      }
      const u = unitOf(attr);
      if (u && !isRatio(attr)) axis.appendChild(svg("text", { x: 4, y: TOP + 4, class: "unit" }, u));
    }
    axis.appendChild(svg("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "base" }));
    for (const t of xt) {
      axis.appendChild(svg("line", { x1: x(t), x2: x(t), y1: H - B, y2: H - B + 4, class: "base" }));
      axis.appendChild(svg("text", { x: x(t), y: H - 8, "text-anchor": "middle" }, xLabel(t)));
    }
    return root;
  }

  window.IOT = { OPERATORS, STATE_COLOUR, SEVERITY_COLOUR, types, value, unitOf, stateDot, stateBadge, severity, alarmState,
    alarmRow, deviceHref, openAlarms, chart };
})();
