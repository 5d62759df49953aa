// 一网通办 home: services for my life events (一件事, with what each saves), my applications with every
// department's part, the timeline, corrections asked of me, and 好差评 (with the rectification it opened).
(function () {
  "use strict";
  const CB = window.CB;
  const { T, el, get, api, fmt, when, name, dot, say, sayError, langHref } = CB;
  const $ = (id) => document.getElementById(id);
  const BROUGHT = ["to_bring", "needs_consent", "uploaded", "verified"];

  function savingsTable(s) {
    const row = (label, a, b) => el("tr", {}, el("td", {}, label), el("td", {}, String(a)), el("td", { class: "win" }, String(b)));
    return el("table", { class: "sv-save" },
      el("tr", {}, el("th", {}, T.sv_saved), el("th", {}, T.sv_one_by_one), el("th", {}, T.sv_bundle)),
      row(T.sv_fields, s.fields.one_by_one, `${s.fields.to_fill} (${fmt(T.sv_prefilled, { n: s.fields.prefilled })})`),
      row(T.sv_materials, s.materials.one_by_one, s.materials.to_bring),
      row(T.sv_visits, s.visits.one_by_one, s.visits.bundle),
      row(T.sv_days, s.days.one_by_one, s.days.bundle));
  }

  function bundleCard(b) {
    return el("article", { class: "card sv-bundle", dataset: { bundle: b.code } },
      el("h3", {}, b.name),
      el("p", {}, b.description),
      el("p", { class: "hint" }, fmt(T.sv_promised, { n: b.promised_days }), " · ", T.sv_stages, ": ",
        b.groups.map((g) => g.length).join(" → ")),
      savingsTable(b.savings),
      el("a", { class: "button primary", href: langHref("/services/apply?bundle=" + encodeURIComponent(b.code)), id: "apply-" + b.code }, T.sv_apply));
  }

  function partRow(p) {
    return el("li", { dataset: { part: p.id, item: p.item_code, status: p.status } }, dot(p.light),
      el("b", {}, p.item_name || p.item_code), el("span", { class: "tag" }, p.department || ""),
      el("span", { class: "badge s-" + p.status }, name("part_status", p.status)),
      p.deadline_at ? el("span", { class: "left l-" + p.light }, T.sv_deadline + " " + when(p.deadline_at)) : null,
      p.reason ? el("div", { class: "reason" }, p.reason) : null);
  }

  // 补正: the materials of the part's item the applicant brought, each with its files (remove, upload again)
  function correctionFiles(app, part, files) {
    const mats = app.exemptions.filter((e) => BROUGHT.includes(e.status) && (e.items || []).includes(part.item_code));
    if (!mats.length) return null;
    return el("div", { class: "sv-correct-files" }, el("p", { class: "hint" }, T.sv_correct_files),
      el("ul", { class: "sv-mats" }, mats.map((m) => el("li", { dataset: { key: m.key } }, el("b", {}, m.name),
        CB.files.picker(app.id, m.key, files)))));
  }

  function correctionForm(app, part, files) {
    const inputs = Object.entries(app.form_schema.properties).map(([k, prop]) =>
      el("label", { class: "sv-field" }, prop.title, el("input", { name: k, value: app.form[k] === undefined ? "" : String(app.form[k]) })));
    const box = el("div", { class: "msg", hidden: true });
    return el("form", { class: "card", id: "correct-form", onsubmit: async (e) => {
      e.preventDefault();
      const f = new FormData(e.target), form = {};
      for (const [k, prop] of Object.entries(app.form_schema.properties)) {
        const v = (f.get(k) || "").toString();
        if (v === "" || String(app.form[k]) === v) continue;
        form[k] = prop.type === "integer" || prop.type === "number" ? Number(v) : v;
      }
      try {
        await api("POST", `/api/v1/services/applications/${app.id}/parts/${part.id}/correct`, { form });
        await show(app.id);
      } catch (err) { sayError(box, err); }
    } }, el("h3", {}, T.sv_correct, " · ", part.item_name || part.item_code), el("p", { class: "reason" }, part.reason || ""),
    el("div", { class: "sv-form" }, inputs), correctionFiles(app, part, files), box,
    el("button", { type: "submit", class: "primary" }, T.sv_correct_send));
  }

  function ratingBlock(app) {
    if (app.rating) {
      const r = app.rating, rect = r.rectification;
      return el("div", { class: "card", id: "rating" }, el("h3", {}, T.sv_rate),
        el("p", {}, fmt(T.sv_rated, { g: r.label }), r.comment ? " · " + r.comment : ""),
        rect ? el("p", { id: "rectification", dataset: { status: rect.status } }, el("b", {}, T.sv_rect + " "),
          rect.status === "done" ? fmt(T.sv_rect_done, { a: rect.action_taken, b: rect.callback_note })
            : fmt(T.sv_rect_deadline, { d: when(rect.deadline_at) })) : null);
    }
    if (app.status !== "done") return null;
    const box = el("div", { class: "msg", hidden: true });
    const grades = [5, 4, 3, 2, 1].map((g) => el("label", {}, el("input", { type: "radio", name: "grade", value: String(g), checked: g === 5 }), name("grade", String(g))));
    return el("form", { class: "card", id: "rate-form", onsubmit: async (e) => {
      e.preventDefault();
      const f = new FormData(e.target);
      try {
        await api("POST", `/api/v1/services/applications/${app.id}/rating`, { grade: Number(f.get("grade")), channel: "online", comment: (f.get("comment") || "").toString() || null });
        await show(app.id);
      } catch (err) { sayError(box, err); }
    } }, el("h3", {}, T.sv_rate), el("div", { class: "sv-acts" }, grades),
    el("input", { name: "comment", placeholder: T.sv_comment, "aria-label": T.sv_comment }), box,
    el("button", { type: "submit", class: "primary" }, T.sv_rate_send));
  }

  function partName(app, partId) {
    const p = app.parts.find((x) => x.id === partId);
    return p ? `${p.item_name || p.item_code}（${p.department || ""}）` : "";
  }

  async function show(id) {
    const app = await get("/api/v1/services/applications/" + id);
    document.querySelectorAll("#apps li").forEach((li) => li.classList.toggle("selected", li.dataset.id === String(id)));
    const box = $("app-detail");
    box.innerHTML = "";
    box.dataset.status = app.status;
    box.appendChild(el("h2", {}, T.sv_detail, " ", app.code, " ", el("span", { class: "badge s-" + app.status }, name("app_status", app.status)),
      app.outcome ? el("span", { class: "tag" }, name("outcome", app.outcome)) : null));
    if (app.status === "draft") box.appendChild(el("a", { class: "button", href: langHref("/services/apply?id=" + app.id) }, T.sv_apply));
    box.appendChild(el("h3", {}, T.sv_parts));
    box.appendChild(el("ul", { class: "sv-parts", id: "parts" }, app.parts.map(partRow)));
    const fixing = app.parts.filter((x) => x.status === "correction");
    const files = fixing.length ? await CB.files.list(app.id) : [];
    for (const p of fixing) box.appendChild(correctionForm(app, p, files));
    const ex = app.exemptions.filter((e) => !BROUGHT.includes(e.status));
    if (ex.length) {
      box.appendChild(el("h3", {}, T.sv_exempted, ` (${ex.length}/${app.exemptions.length})`));
      box.appendChild(el("ul", { class: "sv-mats", id: "exempted" }, ex.map((e) =>
        el("li", {}, e.name, el("span", { class: "st " + e.status }, T["sv_status_" + e.status] || e.status),
          e.proof ? el("span", { class: "proof" }, `${e.proof.issuer} ${e.proof.number}`) : null))));
    }
    const rb = ratingBlock(app);
    if (rb) box.appendChild(rb);
    box.appendChild(el("h3", {}, T.sv_timeline));
    box.appendChild(el("ol", { class: "timeline" }, app.timeline.map((e) =>
      el("li", { dataset: { action: e.action } }, el("span", { class: "tag" }, when(e.at)), " ",
        el("b", {}, name("sv_action", e.action)), " ", partName(app, e.part_id),
        e.note ? " · " + (e.action === "done" ? name("outcome", e.note) : e.note) : ""))));
    document.body.dataset.detail = String(id);
  }

  async function load() {
    const bundles = await get("/api/v1/services/bundles", { anonymous: true });
    $("bundles").innerHTML = "";
    bundles.forEach((b) => $("bundles").appendChild(bundleCard(b)));
    const lic = await get("/api/v1/licences?page_size=20");
    $("licences").innerHTML = "";
    for (const l of lic.items) {
      $("licences").appendChild(el("li", { dataset: { type: l.type_key } }, el("b", {}, l.type_name),
        el("span", { class: "st " + (l.status === "valid" ? "from_licence" : "") }, T["lic_status_" + l.status] || l.status), el("span", { class: "proof" }, l.identifier)));
    }
    const apps = await get("/api/v1/services/applications?mine=true&page_size=50");
    const list = $("apps");
    list.innerHTML = "";
    $("apps-empty").hidden = apps.items.length > 0;
    for (const a of apps.items) {
      list.appendChild(el("li", { dataset: { id: a.id, status: a.status }, onclick: () => show(a.id).catch((e) => sayError($("home-msg"), e)) },
        el("b", { class: "code" }, a.code), el("span", { class: "badge s-" + a.status }, name("app_status", a.status)),
        el("span", { class: "left" }, when(a.submitted_at || a.created_at))));
    }
  }

  CB.requireUser(["citizen", "window_clerk", "admin"]).then(async () => {
    try {
      await load();
      const want = new URLSearchParams(location.search).get("id");
      if (want) await show(want);
    } catch (err) { sayError($("home-msg"), err); }
    document.body.dataset.ready = "1";
  });
})();
