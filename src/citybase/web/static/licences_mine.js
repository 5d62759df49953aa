// 我的证照: the signed-in holder's licences (their own only: the API answers no others), each with its QR code
// (亮证, fetched with the token and shown as an image) and the log of which department used it, when and why.
(function () {
  "use strict";
  const { T, el, fmt, get, when, requireUser, sayError } = window.CB;
  const $ = (id) => document.getElementById(id);

  async function qrImage(id) {
    const r = await fetch(`/api/v1/licences/${id}/qr.svg`, { headers: { Authorization: "Bearer " + window.CB.token() } });
    if (!r.ok) throw new Error("HTTP " + r.status);
    return URL.createObjectURL(await r.blob());
  }

  function card(lic, labels) {
    const qr = el("div", { class: "qr", hidden: true });
    const toggle = el("button", { type: "button", class: "primary", dataset: { licence: lic.id } }, T.show_qr);
    toggle.addEventListener("click", async () => {
      if (qr.hidden && !qr.firstChild) {
        try { qr.appendChild(el("img", { src: await qrImage(lic.id), alt: lic.type_name })); }
        catch (e) { sayError($("mine-msg"), e); return; }
      }
      qr.hidden = !qr.hidden;
      toggle.textContent = qr.hidden ? T.show_qr : T.hide_qr;
    });
    const link = el("button", { type: "button", class: "link" }, T.open_verifier);
    link.addEventListener("click", async () => {
      const t = await get(`/api/v1/licences/${lic.id}/token`);
      location.href = t.link.replace(/^https?:\/\/[^/]+/, "");
    });
    const dl = el("dl", { class: "facts" });
    const row = (k, v) => { dl.appendChild(el("dt", {}, k)); dl.appendChild(el("dd", {}, v)); };
    row(T.lic_holder, lic.holder_name);
    row(T.lic_holder_code, lic.holder_code);
    for (const [k, v] of Object.entries(lic.fields)) row((labels[lic.type_key] || {})[k] || k, v);
    row(T.lic_issued, lic.issued_on);
    row(T.lic_expires, lic.expires_on || T.long_term);
    return el("article", { class: "lic-card holder-" + lic.holder_kind, id: "licence-" + lic.id },
      el("h3", {}, lic.type_name, el("span", { class: "badge s-" + lic.status }, T["lic_status_" + lic.status])),
      el("code", {}, lic.identifier), dl, el("div", { class: "actions" }, toggle, link), qr);
  }

  async function main() {
    const me = await requireUser(["citizen"]);
    if (!me.person_id && !me.legal_entity_id) {
      $("mine-empty").hidden = false;
      $("mine-empty").textContent = T.mine_not_linked;
      return;
    }
    const [page, types, uses] = await Promise.all([
      get("/api/v1/licences?page_size=200"), get("/api/v1/licences/types", { anonymous: true }),
      get("/api/v1/licences/uses?page_size=100"),
    ]);
    const labels = {};
    for (const t of types) {
      labels[t.key] = {};
      for (const f of t.fields) labels[t.key][f.key] = window.CB.LANG === "en" ? f.label_en : f.label;
    }
    const grid = $("licences");
    const byId = {};
    for (const lic of page.items) { byId[lic.id] = lic; grid.appendChild(card(lic, labels)); }
    $("mine-empty").hidden = page.items.length > 0;
    if (page.items[0]) $("holder-name").textContent = page.items[0].holder_name;
    const body = $("uses").querySelector("tbody");
    for (const u of uses.items) {
      body.appendChild(el("tr", {}, el("td", {}, when(u.used_at)), el("td", {}, (byId[u.licence_id] || {}).type_name || u.licence_id),
        el("td", {}, u.department_name || (u.department_id ? fmt(T.dept, { id: u.department_id }) : "–")), el("td", {}, u.purpose), el("td", {}, u.application_ref || "–"),
        el("td", {}, u.consent_ref || "–")));
    }
    $("uses-empty").hidden = uses.items.length > 0;
  }

  main().catch((e) => sayError($("mine-msg"), e)).finally(() => { document.body.dataset.ready = "1"; });
})();
