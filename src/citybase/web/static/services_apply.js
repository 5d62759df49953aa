// The apply wizard: one merged form prefilled from the base registries, materials that a licence or a registry
// proves attached with the applicant's consent (two 免于提交), drafts kept, errors shown beside each field.
// Each material the applicant brings gets a file input (upload with progress, the files listed with a remove
// button); a material with no file refuses the submission beside it.
// ?counter=1 is the window clerk's counter (一窗受理): the same path, filed for the person named, where the clerk
// may also mark a paper original checked (原件已核验) instead of uploading a scan.
(function () {
  "use strict";
  const CB = window.CB;
  const { T, el, get, api, fmt, say, sayError, hush, langHref } = CB;
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  let app = null, files = [], canVerify = false;
  const BROUGHT = ["to_bring", "needs_consent", "uploaded", "verified"];

  function input(key, prop, value) {
    const common = { name: key, id: "f-" + key, "aria-label": prop.title };
    if (prop.enum) {
      return el("select", common, el("option", { value: "" }, "–"),
        prop.enum.map((v) => el("option", { value: v, selected: v === value }, v)));
    }
    const type = prop.format === "date" ? "date" : (prop.type === "integer" || prop.type === "number") ? "number" : "text";
    return el("input", { ...common, type, value: value === undefined || value === null ? "" : String(value),
      step: prop.type === "number" ? "any" : undefined });
  }

  function render() {
    const schema = app.form_schema, pre = new Set(app.prefilled);
    $("apply-title").textContent = (app.channel === "window" ? T.sv_counter_title + " · " : "") + app.code;
    const fields = $("fields");
    fields.innerHTML = "";
    for (const [key, prop] of Object.entries(schema.properties)) {
      const req = (schema.required || []).includes(key);
      fields.appendChild(el("div", { class: "sv-field" + (pre.has(key) ? " prefilled" : ""), dataset: { field: key } },
        el("label", { for: "f-" + key }, prop.title, req ? " *" : ""),
        input(key, prop, app.form[key]),
        el("div", { class: "tags" }, pre.has(key) ? el("span", { class: "tag ok" }, T.sv_prefill_tag) : null,
          (prop["x-items"] || []).length > 1 ? el("span", { class: "tag" }, fmt(T.sv_items_using, { n: prop["x-items"].length })) : null),
        el("div", { class: "err" })));
    }
    const mats = $("materials");
    mats.innerHTML = "";
    for (const m of app.materials) {
      const st = el("span", { class: "st " + m.status }, T["sv_status_" + m.status] || m.status);
      const li = el("li", { dataset: { key: m.key, status: m.status } }, el("b", {}, m.name), m.required ? "" : T.sv_optional, st);
      const err = el("div", { class: "err" });
      if (m.source.kind === "licence" && m.proof) {
        li.appendChild(el("span", { class: "proof" }, T.sv_preview + ": " + m.proof.issuer + " " + m.proof.number));
        li.appendChild(el("label", {}, el("input", { type: "checkbox", class: "consent", value: m.source.type, checked: m.consented }), T.sv_consent));
      }
      if (BROUGHT.includes(m.status) && !m.proof) {  // one the applicant holds a licence of: consent instead
        if (canVerify) {
          li.appendChild(el("label", {}, el("input", { type: "checkbox", class: "verify", value: m.key, checked: m.provided }), T.sv_verify_original));
        }
        // with no file the material is what it was before: to bring, or its original checked at the window
        const without = m.provided ? "verified" : "to_bring";
        li.appendChild(CB.files.picker(app.id, m.key, files, { errorBox: err, onChange: (mine) => {
          const now = mine.length ? "uploaded" : without;
          li.dataset.status = now;
          st.className = "st " + now;
          st.textContent = T["sv_status_" + now] || now;
          li.classList.remove("bad");
          files = files.filter((f) => f.material_key !== m.key).concat(mine);
        } }));
      }
      li.appendChild(err);
      mats.appendChild(li);
    }
    $("wizard").hidden = false;
  }

  function answers() {
    const out = {};
    for (const [key, prop] of Object.entries(app.form_schema.properties)) {
      const v = $("f-" + key).value;
      if (v === "") { if (app.form[key] !== undefined) out[key] = null; continue; }
      out[key] = prop.type === "integer" || prop.type === "number" ? Number(v) : v;
    }
    return {
      form: out,
      consent: [...document.querySelectorAll("input.consent:checked")].map((c) => c.value),
      // only a window clerk checks paper originals; an applicant's materials are the files uploaded
      provided: canVerify ? [...document.querySelectorAll("input.verify:checked")].map((c) => c.value) : undefined,
    };
  }

  function clearErrors() {
    document.querySelectorAll(".sv-field.bad, .sv-mats li.bad").forEach((n) => n.classList.remove("bad"));
    document.querySelectorAll(".err").forEach((n) => { n.textContent = ""; });
  }

  function showErrors(err) {
    sayError($("apply-msg"), err);
    for (const e of (err.problem && err.problem.errors) || []) {
      const where = e.where || "";
      const node = where.startsWith("materials.")
        ? document.querySelector(`.sv-mats li[data-key="${CSS.escape(where.slice(10))}"]`)
        : document.querySelector(`.sv-field[data-field="${CSS.escape(e.field || where.replace(/^form\./, ""))}"]`);
      if (!node) continue;
      node.classList.add("bad");
      node.querySelector(".err").textContent = e.problem;
    }
  }

  async function save() {
    clearErrors();
    hush($("apply-msg"));
    app = await api("PATCH", "/api/v1/services/applications/" + app.id, answers());
    files = await CB.files.list(app.id);
    return app;
  }

  async function open(id) {
    [app, files] = await Promise.all([get("/api/v1/services/applications/" + id), CB.files.list(id)]);
    render();
  }

  async function onSave() {
    try { await save(); render(); say($("apply-msg"), "ok", T.sv_draft_saved); } catch (err) { showErrors(err); }
    document.body.dataset.step = "saved";
  }

  async function onSubmit() {
    try {
      await save();
      render();
      app = await api("POST", `/api/v1/services/applications/${app.id}/submit`);
      say($("apply-msg"), "ok", fmt(T.sv_submitted, { c: app.code }));
      $("wizard").hidden = true;
      $("apply-msg").appendChild(el("a", { class: "button", id: "to-home", href: langHref("/services?id=" + app.id) }, T.sv_detail));
      document.body.dataset.step = "submitted";
    } catch (err) { showErrors(err); document.body.dataset.step = "refused"; }
  }

  async function start(extra) {
    const body = { bundle: params.get("bundle"), item: params.get("item"), ...(extra || {}) };
    app = await api("POST", "/api/v1/services/applications", body);
    history.replaceState(null, "", langHref("/services/apply?id=" + app.id));
    files = [];
    render();
  }

  CB.requireUser(["citizen", "window_clerk", "admin"]).then(async (me) => {
    canVerify = me.roles.includes("window_clerk") || me.roles.includes("admin");
    $("save").addEventListener("click", onSave);
    $("submit").addEventListener("click", onSubmit);
    try {
      if (params.get("bundle")) {
        const b = await get("/api/v1/services/bundles/" + encodeURIComponent(params.get("bundle")), { anonymous: true });
        $("apply-sub").textContent = `${b.name} · ${fmt(T.sv_promised, { n: b.promised_days })}`;
      }
      if (params.get("id")) {
        await open(params.get("id"));
      } else if (params.get("counter") || me.roles.includes("window_clerk")) {
        $("counter").hidden = false;
        $("counter").addEventListener("submit", async (e) => {
          e.preventDefault();
          const pid = Number($("counter-person").value) || null, eid = Number($("counter-entity").value) || null;
          try { await start({ person_id: pid, legal_entity_id: eid }); $("counter").hidden = true; } catch (err) { sayError($("apply-msg"), err); }
          document.body.dataset.step = "started";
        });
      } else {
        await start();
      }
    } catch (err) { sayError($("apply-msg"), err); }
    document.body.dataset.ready = "1";
  });
})();
