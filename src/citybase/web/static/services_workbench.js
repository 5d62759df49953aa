// 审批工作台: the clerk's department's parts (nearest deadline first, with lights), one application at a time
// with its form, the materials exempted, the files the applicant uploaded (downloads are audited), and the
// actions the state table allows from the part's state.
(function () {
  "use strict";
  const CB = window.CB;
  const { T, el, get, api, fmt, when, name, dot, say, sayError } = CB;
  const $ = (id) => document.getElementById(id);
  const pct = (x) => (x === null || x === undefined ? "–" : Math.round(x * 100) + "%");
  let table = null, me = null;

  async function kpis() {
    const k = await get("/api/v1/services/kpis");
    const mine = k.by_department.find((d) => d.department_id === me.department_id) || k.overall;
    const show = { ...k.overall, ...mine };
    const keys = ["applications", "full_online_rate", "actual_online_rate", "material_exemption_rate", "time_cut_rate",
      "instant_rate", "once_done_rate", "good_rating_rate", "rectification_rate", "average_handling_days"];
    $("kpis").innerHTML = "";
    for (const key of keys) {
      const v = show[key];
      const text = key.endsWith("_rate") ? pct(v) : (v === null || v === undefined ? "–" : String(v));
      $("kpis").appendChild(el("div", { dataset: { kpi: key } }, el("dt", {}, T["kpi_" + key]), el("dd", {}, text)));
    }
  }

  function actions(app, part) {
    const box = el("div", { class: "msg", hidden: true });
    const reason = el("input", { name: "reason", placeholder: T.sv_reason, "aria-label": T.sv_reason });
    const allowed = Object.entries(table.actions).filter(([a, t]) =>
      t.roles.length && a !== "correct" && t.from.includes(part.status) && t.roles.some((r) => me.roles.includes(r)));
    const buttons = allowed.map(([a, t]) => el("button", { type: "button", dataset: { action: a },
      class: a === "accept" || a === "approve" || a === "complete" ? "primary" : "",
      onclick: async () => {
        try {
          await api("POST", `/api/v1/services/applications/${app.id}/parts/${part.id}/${a}`, { reason: reason.value || null });
          say($("wb-msg"), "ok", fmt(T.done_ok, { a: T["sv_act_" + a.replace(/-/g, "_")] || a }));
          await load();
          await open(app.id, part.id);
        } catch (err) { sayError(box, err); }
      } }, T["sv_act_" + a.replace(/-/g, "_")] || a));
    return el("div", { class: "sv-acts", id: "acts" }, reason, buttons, box);
  }

  async function open(appId, partId) {
    const [app, files] = await Promise.all([get("/api/v1/services/applications/" + appId), CB.files.list(appId)]);
    const part = app.parts.find((p) => p.id === partId);
    document.querySelectorAll("#queue li").forEach((li) => li.classList.toggle("selected", li.dataset.part === String(partId)));
    const d = $("wb-detail");
    d.innerHTML = "";
    d.appendChild(el("div", { class: "detail-head" }, el("h2", {}, dot(part.light), app.code, " · ", part.item_name || part.item_code),
      el("span", { class: "badge s-" + part.status }, name("part_status", part.status)),
      part.deadline_at ? el("span", { class: "left l-" + part.light }, T.sv_deadline + " " + when(part.deadline_at)) : null));
    d.appendChild(actions(app, part));
    d.appendChild(el("h3", {}, T.sv_form_answers));
    d.appendChild(el("dl", { class: "facts" }, Object.entries(app.form_schema.properties).flatMap(([k, prop]) =>
      [el("dt", {}, prop.title), el("dd", {}, app.form[k] === undefined ? "–" : String(app.form[k]))])));
    d.appendChild(el("h3", {}, T.sv_materials_title));
    d.appendChild(el("ul", { class: "sv-mats" }, app.exemptions.map((e) => el("li", {}, e.name,
      el("span", { class: "st " + e.status }, T["sv_status_" + e.status] || e.status),
      e.proof ? el("span", { class: "proof" }, `${e.proof.issuer} ${e.proof.number}`) : null))));
    const names = Object.fromEntries(app.exemptions.map((e) => [e.key, e.name]));
    d.appendChild(el("h3", {}, T.sv_files, ` (${files.length})`));
    d.appendChild(files.length ? el("ul", { class: "sv-files", id: "wb-files" }, files.map((f) =>
      el("li", { dataset: { file: f.id } }, el("b", {}, f.material_name || names[f.material_key] || f.material_key),
        [...CB.files.fileRow(f, { who: true, onError: (err) => sayError($("wb-msg"), err) }).childNodes])))
      : el("p", { class: "hint", id: "wb-files" }, T.sv_no_files));
    d.appendChild(el("h3", {}, T.sv_parts));
    d.appendChild(el("ul", { class: "sv-parts" }, app.parts.map((p) => el("li", {}, dot(p.light), p.item_name || p.item_code,
      el("span", { class: "tag" }, p.department || ""), el("span", { class: "badge s-" + p.status }, name("part_status", p.status))))));
    document.body.dataset.open = String(partId);
  }

  async function load() {
    const q = await get("/api/v1/services/parts?page_size=100");
    $("queue-count").textContent = fmt(T.count_of, { n: q.total });
    const list = $("queue");
    list.innerHTML = "";
    $("queue-empty").hidden = q.items.length > 0;
    for (const p of q.items) {
      list.appendChild(el("li", { dataset: { part: p.id, app: p.application_id, item: p.item_code, status: p.status },
        onclick: () => open(p.application_id, p.id).catch((e) => sayError($("wb-msg"), e)) },
        el("div", { class: "row1" }, dot(p.light), el("b", { class: "code" }, p.item_name || p.item_code),
          el("span", { class: "badge s-" + p.status }, name("part_status", p.status)),
          el("span", { class: "left l-" + p.light }, p.deadline_at ? when(p.deadline_at) : T.no_deadline)),
        el("div", { class: "row2" }, "#" + p.application_id, " ", p.item_code, " ", p.department || "")));
    }
    await kpis();
  }

  CB.requireUser(["clerk", "admin"]).then(async (user) => {
    me = user;
    try {
      table = await get("/api/v1/services/workflow", { anonymous: true });
      $("refresh").addEventListener("click", () => load().catch((e) => sayError($("wb-msg"), e)));
      await load();
    } catch (err) { sayError($("wb-msg"), err); }
    document.body.dataset.ready = "1";
  });
})();
