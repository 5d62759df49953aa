// 派单工作台: the queue of incidents by deadline light, one incident in detail with its timeline, tasks and
// reporters, a small map of where it is, the dispatcher's actions, and the 12345 hotline intake.
(function () {
  "use strict";
  const CB = window.CB;
  const { T, workflow, allowed, el, get, api, fmt, when, timeLeft, name, dot, badge, say, sayError, hush } = CB;
  const $ = (id) => document.getElementById(id);
  const LIGHT_COLOUR = { red: "#d62828", yellow: "#f4a100", green: "#2a9d55", grey: "#8a99ab" };

  const state = { cats: null, deptName: null, streets: [], streetById: {}, items: [], selected: null, detail: null, loads: 0, acts: 0 };
  let map = null, marker = null;

  // ---------------------------------------------------------------- the queue

  function streetOf(inc) {
    if (!(inc.street_id in state.streetById)) {
      state.streetById[inc.street_id] = CB.featureAt(state.streets, inc.lon, inc.lat);
    }
    const f = state.streetById[inc.street_id];
    return f ? f.properties : null;
  }

  function catName(code) {
    const c = state.cats.byCode[code];
    return c ? c.name : code;
  }

  async function loadQueue() {
    const params = new URLSearchParams({ status: $("f-status").value || workflow.open.join(","), page_size: "500" });
    if ($("f-category").value) params.set("category_code", $("f-category").value);
    const page = await get("/api/v1/ops/incidents?" + params);
    const street = $("f-street").value;
    // The API filters by street id; the page knows streets by their polygons, so it filters here.
    state.items = page.items.filter((i) => !street || (streetOf(i) || {}).code === street);
    state.loads += 1;
    renderQueue();
  }

  function renderQueue() {
    const list = $("queue");
    list.innerHTML = "";
    const now = Date.now();
    for (const inc of state.items) {
      const st = streetOf(inc);
      list.appendChild(el("li", {
        class: "item" + (inc.id === state.selected ? " selected" : ""), tabindex: "0",
        dataset: { id: inc.id, code: inc.code, light: inc.light, status: inc.status },
        onclick: () => select(inc.id), onkeydown: (e) => { if (e.key === "Enter") select(inc.id); },
      },
      el("div", { class: "row1" }, dot(inc.light), el("b", { class: "code" }, inc.code), badge(inc.status),
        el("span", { class: "left l-" + inc.light }, timeLeft(inc, now))),
      el("div", { class: "row2" }, el("span", { class: "cat" }, catName(inc.category_code)),
        el("span", { class: "street" }, st ? st.name : ""), el("span", { class: "chan" }, name("channel", inc.channel))),
      el("div", { class: "desc" }, inc.description)));
    }
    $("queue-count").textContent = fmt(T.count_of, { n: state.items.length });
    $("queue-empty").hidden = state.items.length > 0;
    document.body.dataset.queue = String(state.items.length);
    document.body.dataset.queueLoads = String(state.loads);
  }

  // ---------------------------------------------------------------- one incident

  async function select(id) {
    state.selected = id;
    for (const li of document.querySelectorAll("#queue li")) li.classList.toggle("selected", li.dataset.id === String(id));
    hush($("act-msg"));
    history.replaceState(null, "", location.pathname + location.search + "#incident-" + id);
    try {
      show(await get("/api/v1/ops/incidents/" + id));
    } catch (err) {
      const box = $("detail");
      box.innerHTML = "";
      sayError(box.appendChild(el("div", { class: "msg" })), err);
    }
  }

  function fact(label, ...value) {
    return [el("dt", {}, label), el("dd", {}, ...value)];
  }

  function percent(x) {
    return x === null || x === undefined ? "" : Math.round(x * 100) + "%";
  }

  // "user:2:dispatcher" → "dispatcher"; "system" stays.
  function actorName(actor) {
    const m = /^user:\d+:(.+)$/.exec(actor || "");
    return m ? m[1] : actor;
  }

  function timelineExtras(e) {
    const d = e.data || {}, out = [];
    if (d.channel) out.push(name("channel", d.channel));
    if (d.category_code) out.push(`${T.category}: ${d.category_code} ${catName(d.category_code)}`);
    if (d.suggested_code) out.push(`${T.suggested}: ${d.suggested_code} (${T.confidence} ${percent(d.confidence)})`);
    if (d.priority) out.push(`${T.priority}: ${name("priority", d.priority)}`);
    if (d.deadline_at) out.push(`${T.deadline}: ${when(d.deadline_at)}`);
    if (d.main_department_id) out.push(`${T.main_department}: ${state.deptName(d.main_department_id)}`);
    if (d.department_id) out.push(state.deptName(d.department_id));
    if (d.days) out.push(`${T.days}: ${d.days}`);
    if (d.result) out.push(`${T.result}: ${d.result}`);
    if (d.into) out.push(`→ ${d.into}`);
    if (d.merged) out.push(`← ${d.merged}`);
    if (d.rating) out.push(d.rating);
    if (d.routed_by) out.push(`${T.routing}: ${d.routed_by}`);
    return out;
  }

  function show(d) {
    state.detail = d;
    const box = $("detail");
    box.innerHTML = "";
    box.dataset.id = d.id;
    box.dataset.status = d.status;
    const st = streetOf(d);
    const cat = state.cats.byCode[d.category_code];
    box.appendChild(el("div", { class: "detail-head" },
      el("h2", {}, dot(d.light), " ", el("span", { id: "d-code" }, d.code)), badge(d.status),
      el("span", { class: "left l-" + d.light, id: "d-left" }, timeLeft(d)),
      d.repeat_count ? el("span", { class: "tag" }, fmt(T.repeat, { n: d.repeat_count })) : null));

    const suggested = d.suggested_code
      ? [`${d.suggested_code} ${catName(d.suggested_code)}`, el("span", { class: "conf" },
        ` · ${T.confidence} ${percent(d.suggested_confidence)}`)]
      : ["–"];
    box.appendChild(el("dl", { class: "facts", id: "d-facts" },
      fact(T.description, el("span", { id: "d-description" }, d.description)),
      fact(T.address, d.address_text || "–", el("small", {}, ` (${d.lon.toFixed(5)}, ${d.lat.toFixed(5)})`)),
      fact(T.street, st ? st.name : "–"),
      fact(T.channel, name("channel", d.channel), " · ", T.created_at, " ", when(d.created_at)),
      fact(T.reporter, d.reporter_name || "–", " ", el("span", { id: "d-phone" }, d.reporter_phone || "")),
      fact(T.priority, name("priority", d.priority)),
      fact(T.category, `${d.category_code} ${cat ? cat.major_name + " / " + cat.name : ""} `,
        el("span", { class: d.category_confirmed ? "tag ok" : "tag warn" },
          d.category_confirmed ? T.confirmed : T.unconfirmed)),
      fact(T.suggested, el("span", { id: "d-suggested" }, ...suggested)),
      fact(T.routing, el("span", { id: "d-why" }, (d.routing && d.routing.why) || "–")),
      fact(T.main_department, state.deptName(d.main_department_id)),
      fact(T.deadline, d.deadline_at ? when(d.deadline_at) + " · " + timeLeft(d) : T.no_deadline),
      d.extension_days ? fact(T.act_extension, el("span", { class: "tag warn", id: "d-extension" },
        fmt(T.extension_pending, { n: d.extension_days, r: d.extension_reason || "" }))) : null));

    box.appendChild(el("h3", {}, T.tasks));
    if (d.tasks.length) {
      box.appendChild(el("table", { class: "tasks", id: "d-tasks" },
        el("thead", {}, el("tr", {}, ["#", T.department, T.role, T.status, T.task_result, T.assigned_at]
          .map((h) => el("th", {}, h)))),
        el("tbody", {}, d.tasks.map((t) => el("tr", { dataset: { status: t.status } },
          el("td", {}, t.id), el("td", {}, state.deptName(t.department_id)), el("td", {}, name("task_role", t.role)),
          el("td", {}, name("task_status", t.status)), el("td", {}, t.result || ""), el("td", {}, when(t.created_at)))))));
    } else {
      box.appendChild(el("p", { class: "hint" }, T.no_tasks));
    }

    box.appendChild(el("h3", {}, T.timeline));
    box.appendChild(el("ol", { class: "timeline", id: "d-timeline" }, d.timeline.map((e) => el("li", {
      dataset: { action: e.action } },
    el("time", {}, when(e.at)), el("b", { class: "actor", title: e.actor }, actorName(e.actor)), el("span", { class: "act" }, name("action", e.action)),
    el("span", { class: "flow" }, e.from_status && e.from_status !== e.to_status
      ? `${name("status", e.from_status)} → ${name("status", e.to_status)}` : name("status", e.to_status)),
    e.reason ? el("div", { class: "why" }, e.reason) : null,
    timelineExtras(e).map((x) => el("div", { class: "extra" }, x))))));

    box.appendChild(el("h3", {}, T.reporters));
    box.appendChild(el("ul", { class: "reporters", id: "d-reporters" }, d.reporters.map((r) => el("li", {},
      el("span", { class: "chan" }, name("channel", r.channel)), " ", r.name || "–", " ",
      el("span", { class: "phone" }, r.phone || ""), r.outcome ? el("div", { class: "extra" }, r.outcome) : null))));

    showOnMap(d);
    showActions(d);
    document.body.dataset.detail = String(d.id);
  }

  // ---------------------------------------------------------------- the map beside it: grids, streets, the point

  async function initMap(streets, grids) {
    map = L.map("minimap", { attributionControl: false, zoomSnap: 0.5 });
    L.geoJSON(grids, { interactive: false, style: { className: "cb-grid-outline", color: "#8a99ab", weight: 0.6, fill: false } })
      .addTo(map);
    const streetLayer = L.geoJSON(streets, {
      interactive: false, style: { className: "cb-street-outline", color: "#0f3057", weight: 1.6, fill: false },
    }).addTo(map);
    map.fitBounds(streetLayer.getBounds(), { padding: [6, 6] });
    document.body.dataset.mapReady = String(grids.features.length);
  }

  function showOnMap(d) {
    const at = [d.lat, d.lon];
    if (!marker) {
      marker = L.circleMarker(at, { radius: 8, weight: 2, color: "#fff", fillOpacity: 1, className: "cb-incident" })
        .addTo(map);
    }
    marker.setLatLng(at).setStyle({ fillColor: LIGHT_COLOUR[d.light] || LIGHT_COLOUR.grey });
    // The point within its street, so the grids around it show.
    const st = state.streetById[d.street_id];
    if (st) map.fitBounds(L.geoJSON(st).getBounds(), { padding: [10, 10], animate: false });
    else map.setView(at, 14, { animate: false });
  }

  // ---------------------------------------------------------------- actions

  function applicable(d) {
    const s = d.status;
    return {
      register: allowed("register", s),
      reject: allowed("reject", s),
      dispatch: allowed("dispatch", s),
      merge: allowed("merge", s),
      "extension-decision": Boolean(d.extension_days),
      verify: allowed("verify", s),
      close: allowed("close", s),
      suspend: allowed("suspend", s) && !d.suspended,
      resume: Boolean(d.suspended),
    };
  }

  function showActions(d) {
    const can = applicable(d);
    $("actions").hidden = !Object.values(can).some(Boolean) && $("act-msg").hidden;
    for (const form of document.querySelectorAll("form.act")) {
      form.hidden = !can[form.dataset.action];
      if (!form.hidden) form.reset();
    }
    $("a-category").value = d.category_code;
    $("a-priority").value = d.priority;
  }

  async function incidentIdOf(text) {
    const v = text.trim();
    if (/^\d{1,9}$/.test(v)) return Number(v);
    const page = await get("/api/v1/ops/incidents?" + new URLSearchParams({ q: v, status: workflow.states.join(",") }));
    const hit = page.items.find((i) => i.code === v);
    if (!hit) throw new Error(`${T.into}: ${v}?`);
    return hit.id;
  }

  async function bodyOf(action, form, submitter) {
    const f = new FormData(form);
    const text = (k) => (f.get(k) || "").toString();
    switch (action) {
      case "register": return { category_code: text("category_code"), priority: text("priority") };
      case "reject": case "close": case "suspend": return { reason: text("reason") };
      case "merge": return { into_id: await incidentIdOf(text("into")) };
      case "extension-decision": return { approve: submitter.value === "true", note: text("note") || null };
      case "verify": return { passed: submitter.value === "true", note: text("note") };
      default: return {};
    }
  }

  async function act(e) {
    e.preventDefault();
    const form = e.target, action = form.dataset.action, d = state.detail;
    if (!d) return;
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    const box = $("act-msg");
    try {
      const body = await bodyOf(action, form, e.submitter || form.querySelector("button"));
      const after = await api("POST", `/api/v1/ops/incidents/${d.id}/${action}`, body);
      say(box, "ok", fmt(T.done_ok, { a: T["act_" + action.replace("-", "_")] }) + ` · ${after.code} → ${name("status", after.status)}`);
      show(after);
      await loadQueue();
    } catch (err) {
      sayError(box, err);
      $("actions").hidden = false;
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
      document.body.dataset.acts = String(++state.acts);
    }
  }

  // ---------------------------------------------------------------- 12345 hotline

  function initHotline() {
    const dlg = $("hotline"), form = $("hotline-form"), box = $("hotline-msg");
    $("open-hotline").addEventListener("click", () => { hush(box); form.reset(); dlg.showModal(); });
    $("hotline-cancel").addEventListener("click", () => dlg.close());
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const f = new FormData(form);
      const body = {
        caller_phone: f.get("caller_phone").toString().trim(), caller_name: f.get("caller_name").toString().trim() || null,
        text: f.get("text").toString().trim(), address: f.get("address").toString().trim(), priority: f.get("priority"),
      };
      $("hotline-submit").disabled = true;
      try {
        const r = await api("POST", "/api/v1/ops/hotline", body);
        dlg.close();
        $("f-status").value = ""; $("f-street").value = ""; $("f-category").value = "";
        await loadQueue();
        await select(r.incident.id);
        say($("act-msg"), "ok", r.merged_into ? fmt(T.merged_into, { c: r.merged_into }) : fmt(T.hotline_ok, { c: r.incident.code }));
        $("actions").hidden = false;
      } catch (err) {
        sayError(box, err);
      } finally {
        $("hotline-submit").disabled = false;
      }
    });
  }

  // ---------------------------------------------------------------- start

  async function start() {
    await CB.requireUser(["dispatcher", "admin"]);
    const [cats, deptName, streets, grids] = await Promise.all([
      CB.categories(), CB.departments(), get("/api/v1/areas/geojson?level=street"), get("/api/v1/areas/geojson?level=grid"),
    ]);
    Object.assign(state, { cats, deptName, streets: streets.features });
    CB.fillCategorySelect($("f-category"), cats.list, true);
    CB.fillCategorySelect($("a-category"), cats.list, false);
    for (const s of workflow.states) $("f-status").appendChild(el("option", { value: s }, name("status", s)));
    const fs = $("f-street");
    for (const f of [...streets.features].sort((a, b) => a.properties.code.localeCompare(b.properties.code))) {
      fs.appendChild(el("option", { value: f.properties.code }, f.properties.name));
    }
    await initMap(streets, grids);
    for (const id of ["f-status", "f-street", "f-category"]) $(id).addEventListener("change", () => loadQueue().catch(console.error));
    $("refresh").addEventListener("click", () => loadQueue().catch(console.error));
    for (const form of document.querySelectorAll("form.act")) form.addEventListener("submit", act);
    initHotline();
    await loadQueue();
    const fromHash = async () => {
      const m = /^#incident-(\d+)$/.exec(location.hash);
      if (m && Number(m[1]) !== state.selected) await select(Number(m[1]));
    };
    window.addEventListener("hashchange", () => fromHash().catch(console.error));
    await fromHash();
    setInterval(renderQueue, 30000);  // the time left moves on
    document.body.dataset.ready = "1";
  }

  start().catch((err) => {
    console.error(err);
    document.body.dataset.ready = "error";
  });
})();
