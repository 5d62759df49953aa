// 事项目录管理 (admins only): the catalogue's items and 一件事 bundles from the API; an edit is saved with PUT as the
// next version (the API keeps every version, and applications keep theirs); each version with what changed
// since the one before; a bundle's members and dependencies edited row by row, its critical path shown.
(function () {
  "use strict";
  const CB = window.CB;
  const { T, el, get, api, fmt, when, say, sayError, hush } = CB;
  const $ = (id) => document.getElementById(id);
  const S = "/api/v1/services";
  const EDITED = ["name", "committed_days", "fee", "online_level", "max_visits", "conditions"];
  const SKIP = new Set(["code", "version", "current_version", "created_at", "created_by", "department_id"]);
  let tab = "items", items = [], bundles = [], deptCode = {};

  const show = (v) => (v === null || v === undefined || v === "" ? T.cat_none
    : typeof v === "object" ? JSON.stringify(v) : String(v));
  const clip = (s) => (s.length > 60 ? s.slice(0, 57) + "…" : s);

  // What changed from one version to the next: field by field (items), members and dependencies (bundles).
  function changes(prev, v, kind) {
    if (!prev) return [T.cat_first];
    const out = [];
    if (kind === "bundle") {
      for (const k of ["name", "description", "applicant_kind"]) {
        if (prev[k] !== v[k]) out.push(`${T["cat_" + (k === "applicant_kind" ? "applicant_kind" : k)]}: ${clip(show(prev[k]))} → ${clip(show(v[k]))}`);
      }
      const before = Object.fromEntries(prev.members.map((m) => [m.item, m.after.join(", ")]));
      const after = Object.fromEntries(v.members.map((m) => [m.item, m.after.join(", ")]));
      for (const c of Object.keys(after)) if (!(c in before)) out.push(fmt(T.cat_added, { x: c }));
      for (const c of Object.keys(before)) if (!(c in after)) out.push(fmt(T.cat_removed, { x: c }));
      for (const c of Object.keys(after)) {
        if (c in before && before[c] !== after[c]) out.push(fmt(T.cat_deps, { x: c, a: before[c] || T.cat_none, b: after[c] || T.cat_none }));
      }
    } else {
      for (const k of Object.keys(v)) {
        if (SKIP.has(k)) continue;
        const a = JSON.stringify(prev[k]), b = JSON.stringify(v[k]);
        if (a !== b) out.push(`${T["cat_" + ({ committed_days: "committed", statutory_days: "statutory", online_level: "online", max_visits: "visits" }[k] || k)] || k}: ${clip(show(prev[k]))} → ${clip(show(v[k]))}`);
      }
    }
    return out.length ? out : [T.cat_no_changes];
  }

  function versionList(versions, kind) {
    return el("ol", { id: "versions", class: "cat-versions" }, versions.slice().reverse().map((v) => {
      const i = versions.indexOf(v);
      return el("li", { dataset: { version: v.version } },
        el("b", {}, fmt(T.cat_version, { v: v.version })), " ",
        el("span", { class: "hint" }, fmt(T.cat_by, { who: v.created_by, at: when(v.created_at) })),
        el("ul", { class: "cat-changes" }, changes(versions[i - 1], v, kind).map((c) => el("li", {}, c))));
    }));
  }

  const field = (label, input) => el("label", { class: "cat-field" }, el("span", {}, label), input);

  async function openItem(code) {
    const [item, versions] = await Promise.all([get(`${S}/items/${code}`), get(`${S}/items/${code}/versions`)]);
    const d = $("cat-detail");
    d.innerHTML = "";
    const rest = {};
    for (const [k, v] of Object.entries(item)) if (!SKIP.has(k) && !EDITED.includes(k)) rest[k] = v;
    const inputs = {
      name: el("input", { id: "f-name", value: item.name, maxlength: 100 }),
      committed_days: el("input", { id: "f-committed_days", type: "number", min: 0, max: 365, value: item.committed_days }),
      fee: el("input", { id: "f-fee", type: "number", min: 0, step: "0.01", value: item.fee }),
      online_level: el("select", { id: "f-online_level" }, ["full", "partial", "offline"].map((o) =>
        el("option", { value: o, selected: o === item.online_level }, T["cat_online_" + o]))),
      max_visits: el("input", { id: "f-max_visits", type: "number", min: 0, max: 10, value: item.max_visits }),
      conditions: el("textarea", { id: "f-conditions", rows: 3 }, item.conditions),
    };
    const spec = el("textarea", { id: "f-spec", rows: 12, class: "mono", spellcheck: "false" }, JSON.stringify(rest, null, 2));
    const box = el("div", { class: "msg", id: "item-msg", hidden: true });
    const save = el("button", { type: "button", class: "primary", id: "save-item", onclick: async () => {
      hush(box);
      hush($("cat-msg"));
      let other;
      try { other = JSON.parse(spec.value); } catch (e) { say(box, "refused", fmt(T.cat_bad_json, { e: e.message })); return; }
      const body = { ...other, code, department: deptCode[item.department_id] || other.department,
        name: inputs.name.value, committed_days: Number(inputs.committed_days.value), fee: Number(inputs.fee.value),
        online_level: inputs.online_level.value, max_visits: Number(inputs.max_visits.value),
        conditions: inputs.conditions.value };
      try {
        const saved = await api("PUT", `${S}/items/${code}`, body);
        await loadList();
        await openItem(code);
        say($("cat-msg"), "ok", fmt(T.cat_saved, { v: saved.version }));
      } catch (err) { sayError(box, err); }
    } }, T.cat_save_item);
    d.appendChild(el("div", { class: "detail-head" }, el("h2", {}, item.code, " · ", item.name),
      el("span", { class: "badge", id: "current-version" }, fmt(T.cat_current, { v: item.current_version }))));
    d.appendChild(el("form", { id: "item-form", class: "cat-form", onsubmit: (e) => e.preventDefault() },
      field(T.cat_name, inputs.name), field(T.cat_committed, inputs.committed_days),
      el("p", { class: "hint" }, `${T.cat_statutory}: ${item.statutory_days}`),
      field(T.cat_fee, inputs.fee), field(T.cat_online, inputs.online_level), field(T.cat_visits, inputs.max_visits),
      field(T.cat_conditions, inputs.conditions), field(T.cat_spec, spec), save, box));
    d.appendChild(el("h3", {}, T.cat_versions));
    d.appendChild(versionList(versions, "item"));
    document.body.dataset.open = "item:" + code;
  }

  function memberRow(m) {
    const row = el("tr", { class: "member" },
      el("td", {}, el("input", { class: "m-item", value: m.item, list: "item-codes", maxlength: 32, "aria-label": T.cat_member })),
      el("td", {}, el("input", { class: "m-after", value: m.after.join(", "), "aria-label": T.cat_after })),
      el("td", {}, el("button", { type: "button", class: "m-remove", onclick: () => row.remove() }, T.cat_remove)));
    return row;
  }

  function plan(b) {
    return el("div", { id: "plan", class: "cat-plan" },
      el("p", {}, el("b", {}, T.cat_critical + ": "), el("span", { id: "critical-path" }, b.critical_path.join(" → ")),
        " · ", el("span", { id: "promised" }, fmt(T.cat_promised, { n: b.promised_days }))),
      el("p", {}, el("b", {}, T.cat_stages + ": "), b.groups.map((g) => g.join(" ∥ ")).join("  ⟶  ")));
  }

  async function openBundle(code) {
    const [b, versions] = await Promise.all([get(`${S}/bundles/${code}`), get(`${S}/bundles/${code}/versions`)]);
    const d = $("cat-detail");
    d.innerHTML = "";
    const name = el("input", { id: "b-name", value: b.name, maxlength: 100 });
    const desc = el("textarea", { id: "b-description", rows: 2 }, b.description);
    const kind = el("select", { id: "b-applicant_kind" }, ["person", "entity", "any"].map((k) =>
      el("option", { value: k, selected: k === b.applicant_kind }, T["cat_kind_" + k])));
    const rows = el("tbody", { id: "members" }, b.members.map(memberRow));
    const box = el("div", { class: "msg", id: "bundle-msg", hidden: true });
    const save = el("button", { type: "button", class: "primary", id: "save-bundle", onclick: async () => {
      hush(box);
      hush($("cat-msg"));
      const members = [...rows.querySelectorAll("tr")].map((r) => ({ item: r.querySelector(".m-item").value.trim(),
        after: r.querySelector(".m-after").value.split(/[,，\s]+/).map((x) => x.trim()).filter(Boolean) }))
        .filter((m) => m.item);
      try {
        const saved = await api("PUT", `${S}/bundles/${code}`, { name: name.value, description: desc.value,
          applicant_kind: kind.value, members });
        await loadList();
        await openBundle(code);
        say($("cat-msg"), "ok", fmt(T.cat_saved, { v: saved.version }));
      } catch (err) { sayError(box, err); }
    } }, T.cat_save_bundle);
    d.appendChild(el("div", { class: "detail-head" }, el("h2", {}, b.code, " · ", b.name),
      el("span", { class: "badge", id: "current-version" }, fmt(T.cat_current, { v: b.current_version }))));
    d.appendChild(plan(b));
    d.appendChild(el("form", { id: "bundle-form", class: "cat-form", onsubmit: (e) => e.preventDefault() },
      field(T.cat_name, name), field(T.cat_description, desc), field(T.cat_applicant_kind, kind),
      el("h3", {}, T.cat_members),
      el("table", { class: "cat-members" }, el("thead", {}, el("tr", {}, el("th", {}, T.cat_member), el("th", {}, T.cat_after), el("th", {}))), rows),
      el("button", { type: "button", id: "add-member", onclick: () => rows.appendChild(memberRow({ item: "", after: [] })) }, T.cat_add_member),
      save, box));
    d.appendChild(el("h3", {}, T.cat_versions));
    d.appendChild(versionList(versions, "bundle"));
    document.body.dataset.open = "bundle:" + code;
  }

  function renderList() {
    const q = $("cat-filter").value.trim().toLowerCase();
    const list = $("cat-list");
    list.innerHTML = "";
    const rows = tab === "items" ? items : bundles;
    for (const r of rows) {
      if (q && !(r.code.toLowerCase().includes(q) || r.name.toLowerCase().includes(q))) continue;
      const open = tab === "items" ? () => openItem(r.code) : () => openBundle(r.code);
      list.appendChild(el("li", { dataset: { code: r.code, kind: tab === "items" ? "item" : "bundle" },
        onclick: () => { hush($("cat-msg")); open().catch((e) => sayError($("cat-msg"), e)); } },
        el("div", { class: "row1" }, el("b", { class: "code" }, r.name), el("span", { class: "badge" }, "v" + r.version)),
        el("div", { class: "row2" }, r.code, tab === "items" ? ` · ${r.department || ""} · ${r.committed_days}` : ` · ${r.members.length}`)));
    }
  }

  async function loadList() {
    const all = [];
    for (let page = 1; ; page++) {
      const p = await get(`${S}/items?page_size=100&page=${page}`);
      all.push(...p.items);
      if (all.length >= p.total || !p.items.length) break;
    }
    items = all;
    bundles = await get(`${S}/bundles`);
    let codes = $("item-codes");
    if (!codes) codes = document.body.appendChild(el("datalist", { id: "item-codes" }));
    codes.innerHTML = "";
    for (const i of items) codes.appendChild(el("option", { value: i.code }, i.name));
    renderList();
  }

  function setTab(t) {
    tab = t;
    for (const b of document.querySelectorAll(".cat-tabs button")) b.classList.toggle("primary", b.dataset.tab === t);
    renderList();
  }

  CB.requireUser(["admin"]).then(async () => {
    try {
      for (const dpt of await get("/api/v1/departments")) deptCode[dpt.id] = dpt.code;
      $("tab-items").addEventListener("click", () => setTab("items"));
      $("tab-bundles").addEventListener("click", () => setTab("bundles"));
      $("cat-filter").addEventListener("input", renderList);
      await loadList();
    } catch (err) { sayError($("cat-msg"), err); }
    document.body.dataset.ready = "1";
  });
})();
