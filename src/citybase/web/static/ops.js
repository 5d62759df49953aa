// Shared by the incident-loop pages: the signed-in token, calls to the platform's API, problem messages,
// times in Asia/Shanghai, small DOM helpers. Everything the pages show comes from the HTTP API.
(function () {
  "use strict";
  const T = window.CITYBASE_TEXTS;
  const LANG = window.CITYBASE_LANG;
  const KEY = "citybase.token";
  const TZ = "Asia/Shanghai";
  // The workflow table (states, and which action is allowed from which state), read from the API once:
  // the pages spell no status themselves.
  const workflow = { states: [], open: [], terminal: [], actions: {} };

  const token = () => localStorage.getItem(KEY);
  const setToken = (t) => localStorage.setItem(KEY, t);
  const clearToken = () => localStorage.removeItem(KEY);

  // "{n} 件" with {n} replaced.
  function fmt(s, vars) {
    return String(s).replace(/\{(\w+)\}/g, (m, k) => (vars && k in vars ? vars[k] : m));
  }

  // A refused call: the status and the problem+json (detail, fix) the API answered with.
  class ApiError extends Error {
    constructor(status, problem) {
      super(problem.detail || problem.title || ("HTTP " + status));
      this.status = status;
      this.problem = problem;
    }
  }

  async function readBody(r) {
    const text = await r.text();
    if (!text) return null;
    try { return JSON.parse(text); } catch (e) { return { detail: text.slice(0, 300) }; }
  }

  // Open311 answers errors as [{code, description}]; the rest of the API as problem+json.
  function asProblem(status, body) {
    if (Array.isArray(body) && body.length && body[0].description) {
      return { status, title: "HTTP " + status, detail: body.map((e) => e.description).join("; ") };
    }
    return body && typeof body === "object" ? body : { status, detail: "HTTP " + status };
  }

  // fetch with the bearer token; JSON in (or a form), JSON out; ApiError when refused.
  async function api(method, url, body, opts) {
    // problem+json too: Open311 then answers a refusal with detail and fix instead of its bare error list.
    // The page's language, so the API's messages (detail, fix) come back in it.
    const headers = { Accept: "application/json, application/problem+json", "Accept-Language": LANG };
    const t = token();
    if (t && !(opts && opts.anonymous)) headers.Authorization = "Bearer " + t;
    let payload;
    if (body instanceof URLSearchParams) {
      headers["Content-Type"] = "application/x-www-form-urlencoded";
      payload = body;
    } else if (body !== undefined && body !== null) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    const r = await fetch(url, { method, headers, body: payload });
    const data = await readBody(r);
    if (!r.ok) throw new ApiError(r.status, asProblem(r.status, data));
    return data;
  }
  const get = (url, opts) => api("GET", url, undefined, opts);

  function loginUrl() {
    const next = location.pathname + location.search + location.hash;
    return "/login?next=" + encodeURIComponent(next) + (LANG === "en" ? "&lang=en" : "");
  }

  // The signed-in user, or off to /login. With roles, a user without any of them gets a message instead.
  async function requireUser(roles) {
    if (!token()) { location.replace(loginUrl()); return new Promise(() => {}); }
    let me;
    try {
      [me] = await Promise.all([get("/api/v1/me"), loadWorkflow()]);
    } catch (err) {
      if (err.status === 401) { clearToken(); location.replace(loginUrl()); return new Promise(() => {}); }
      throw err;
    }
    showWho(me);
    if (roles && !me.roles.some((r) => roles.includes(r))) {
      const main = document.querySelector("main");
      main.innerHTML = "";
      const box = main.appendChild(el("section", { class: "card narrow", id: "wrong-role" }));
      box.appendChild(el("h2", {}, T.wrong_role));
      box.appendChild(el("p", {}, `${me.display_name} (${me.username}): ${me.roles.join(", ")}`));
      box.appendChild(el("a", { href: loginUrl(), class: "button primary" }, T.switch_user));
      document.body.dataset.ready = "wrong-role";
      return new Promise(() => {});
    }
    return me;
  }

  async function loadWorkflow() {
    if (!workflow.states.length) Object.assign(workflow, await get("/api/v1/ops/workflow", { anonymous: true }));
    return workflow;
  }
  // Whether the table allows an action from an incident's state.
  const allowed = (action, status) => Boolean(workflow.actions[action] && workflow.actions[action].from.includes(status));

  function showWho(me) {
    // Header links meant for some roles (data-roles) are hidden from everyone else once signed in.
    for (const a of document.querySelectorAll("header nav a[data-roles]")) {
      a.hidden = !a.dataset.roles.split(" ").some((r) => me.roles.includes(r));
    }
    const who = document.getElementById("who");
    if (!who) return;
    who.textContent = me.display_name;
    who.title = `${me.username} · ${me.roles.join(", ")}`;
    who.hidden = false;
  }

  // el("div", {class: "x", onclick: f}, "text", child, …): never HTML from data, always text nodes.
  function el(tag, attrs, ...children) {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(n.dataset, v);
      else n.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      n.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return n;
  }

  // A message box: ok (green), or the API's refusal with its detail and fix.
  function say(box, kind, text, fix) {
    box.hidden = false;
    box.className = "msg " + kind;
    box.innerHTML = "";
    if (kind === "refused") box.appendChild(el("b", { class: "msg-title" }, T.refused + ": "));
    box.appendChild(el("span", { class: "msg-detail" }, text));
    if (fix) box.appendChild(el("div", { class: "msg-fix" }, T.fix + ": ", fix));
  }
  function sayError(box, err) {
    if (err instanceof ApiError) {
      say(box, "refused", err.problem.detail || err.message, err.problem.fix);
    } else {
      say(box, "refused", String(err && err.message ? err.message : err));
    }
  }
  function hush(box) { box.hidden = true; box.innerHTML = ""; }

  const whenFmt = new Intl.DateTimeFormat(LANG === "en" ? "en-GB" : "zh-CN", {
    timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  });
  // An instant as Shanghai wall-clock time, "2025/01/06 17:00".
  function when(iso) {
    if (!iso) return "–";
    const parts = Object.fromEntries(whenFmt.formatToParts(new Date(iso)).map((p) => [p.type, p.value]));
    return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}`;
  }

  function span(ms) {
    const m = Math.max(1, Math.round(Math.abs(ms) / 60000));
    const d = Math.floor(m / 1440), h = Math.floor((m % 1440) / 60), mm = m % 60;
    const out = [];
    if (d) out.push(fmt(T.days_n, { n: d }));
    if (h) out.push(fmt(T.hours, { n: h }));
    if (!d && mm) out.push(fmt(T.minutes, { n: mm }));
    return out.join(LANG === "en" ? " " : "");
  }
  // "剩余 1天3小时" / "超时 2小时" / "已挂起" / "未计时" for an incident now.
  function timeLeft(inc, now) {
    if (inc.suspended) return T.suspended;
    if (!inc.deadline_at || !workflow.open.includes(inc.status)) return T.no_deadline;
    const left = new Date(inc.deadline_at).getTime() - (now || Date.now());
    return fmt(left >= 0 ? T.time_left : T.overdue, { t: span(left) });
  }

  const name = (kind, code) => (T.names[kind] && T.names[kind][code]) || code || "–";
  const dot = (light) => el("span", { class: "dot " + (light || "grey"), title: name("light", light) });
  const badge = (status) => el("span", { class: "badge s-" + status }, name("status", status));

  // Categories by code, and the select with one optgroup per major class.
  async function categories() {
    const list = await get("/api/v1/ops/categories", { anonymous: true });
    const byCode = {};
    for (const c of list) byCode[c.code] = c;
    return { list, byCode };
  }
  function fillCategorySelect(select, list, keepFirst) {
    const first = keepFirst ? select.querySelector("option") : null;
    select.innerHTML = "";
    if (first) select.appendChild(first);
    let group = null, major = null;
    for (const c of list) {
      if (c.major !== major) {
        major = c.major;
        group = select.appendChild(el("optgroup", { label: `${c.major} ${c.major_name}` }));
      }
      group.appendChild(el("option", { value: c.code }, `${c.code} ${c.name}`));
    }
  }

  // Department names by id, when the API says which id is which (otherwise "部门 #id").
  async function departments() {
    const byId = {};
    try {
      for (const d of await get("/api/v1/departments")) if (d.id !== undefined) byId[d.id] = d.short_name || d.name;
    } catch (err) { console.warn("departments", err); }
    return (id) => (id === null || id === undefined ? "–" : byId[id] || fmt(T.dept, { id }));
  }

  // Which street polygon a point falls in (ray casting over the street GeoJSON).
  function inRing(x, y, ring) {
    let inside = false;
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const [xi, yi] = ring[i], [xj, yj] = ring[j];
      if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
    }
    return inside;
  }
  function inGeometry(lon, lat, g) {
    const polys = g.type === "Polygon" ? [g.coordinates] : g.type === "MultiPolygon" ? g.coordinates : [];
    return polys.some((rings) => inRing(lon, lat, rings[0]) && !rings.slice(1).some((h) => inRing(lon, lat, h)));
  }
  function featureAt(features, lon, lat) {
    return features.find((f) => inGeometry(lon, lat, f.geometry)) || null;
  }

  function langHref(path) { return path + (LANG === "en" ? (path.includes("?") ? "&" : "?") + "lang=en" : ""); }

  window.CB = {
    T, LANG, workflow, loadWorkflow, allowed, token, setToken, clearToken, fmt, ApiError, api, get, requireUser, showWho, loginUrl, el, say,
    sayError, hush, when, timeLeft, name, dot, badge, categories, fillCategorySelect, departments, featureAt, langHref,
  };
})();
