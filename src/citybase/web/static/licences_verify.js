// 亮证 verification in the browser: the Ed25519 signature of a CBL1 token is checked with WebCrypto against the
// published public keys (fetched once and kept in localStorage), so a licence verifies with no server at all; a
// service worker (licences_sw.js) keeps the page itself, so it also opens with no network once seen online.
// The token comes from the QR code's link fragment (#CBL1…, never sent to a server) or is pasted. Checking
// revocation and expiry in the register is a separate, explicit online step.
(function () {
  "use strict";
  const { T, el, fmt, api, get } = window.CB;
  const KEYS = "citybase.licence_keys";
  const TYPES = "citybase.licence_types";
  const $ = (id) => document.getElementById(id);
  let current = null;

  const unb64url = (s) => {
    const b = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4));
    return Uint8Array.from(b, (c) => c.charCodeAt(0));
  };
  const cached = (k) => { try { return JSON.parse(localStorage.getItem(k) || "null"); } catch (e) { return null; } };

  async function refreshCache() {
    // the published keys and the catalogue's labels, kept for offline use; offline, the kept ones serve
    try {
      const [keys, types] = await Promise.all([get("/api/v1/licences/keys", { anonymous: true }),
                                               get("/api/v1/licences/types", { anonymous: true })]);
      localStorage.setItem(KEYS, JSON.stringify(keys));
      localStorage.setItem(TYPES, JSON.stringify(types));
    } catch (e) { /* offline: use what is kept */ }
    const keys = cached(KEYS) || [];
    $("keys-state").textContent = keys.length ? fmt(T.keys_cached, { n: keys.length }) : T.keys_missing;
  }

  function extract(text) {
    const m = /CBL1\.[0-9a-f]{8}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/.exec(text || "");
    return m ? m[0] : null;
  }

  // {ok, reason, kid, content}: the offline check alone.
  async function verifyOffline(text) {
    const token = extract(text);
    if (!token) return { ok: false, reason: "malformed" };
    const [fmtTag, kid, payload, sig] = token.split(".");
    if (!(window.crypto && crypto.subtle)) return { ok: false, reason: "no_crypto", kid };
    const key = (cached(KEYS) || []).find((k) => k.kid === kid && k.alg === "Ed25519");
    if (!key) return { ok: false, reason: "unknown_key", kid };
    let good = false;
    try {
      const pub = await crypto.subtle.importKey("raw", unb64url(key.x), { name: "Ed25519" }, false, ["verify"]);
      good = await crypto.subtle.verify({ name: "Ed25519" }, pub, unb64url(sig),
                                        new TextEncoder().encode(`${fmtTag}.${kid}.${payload}`));
    } catch (e) { good = false; }
    if (!good) return { ok: false, reason: "bad_signature", kid };
    const content = JSON.parse(new TextDecoder().decode(unb64url(payload)));
    return { ok: true, reason: "valid", kid, content, token };
  }

  function labelsOf(typeCode) {
    const t = (cached(TYPES) || []).find((x) => x.code === typeCode);
    const out = {};
    if (t) for (const f of t.fields) out[f.key] = window.CB.LANG === "en" ? f.label_en : f.label;
    return out;  // insertion order: the catalogue's
  }

  function show(res) {
    $("result").hidden = false;
    $("online-verdict").hidden = true;
    const v = $("verdict");
    const dl = $("content");
    dl.innerHTML = "";
    v.className = "verdict " + (res.ok ? "good" : "bad");
    v.textContent = fmt(T["sig_" + res.reason] || res.reason, { kid: res.kid || "" });
    document.body.dataset.verdict = res.reason;
    $("verify-online").disabled = !res.ok;
    if (!res.ok) return;
    const c = res.content;
    const row = (k, val) => { dl.appendChild(el("dt", {}, k)); dl.appendChild(el("dd", {}, val)); };
    row(T.lic_type, c.tn);
    row(T.lic_holder, c.h);
    row(T.lic_holder_code, c.hc);
    const labels = labelsOf(c.type);  // in the catalogue's order; fields it does not know after them
    const keys = [...Object.keys(labels).filter((k) => k in (c.f || {})),
                  ...Object.keys(c.f || {}).filter((k) => !(k in labels))];
    for (const k of keys) row(labels[k] || k, c.f[k]);
    row(T.lic_issuer, c.isn);
    row(T.lic_issued, c.iat);
    row(T.lic_expires, c.exp || T.long_term);
    row(T.lic_identifier, el("code", {}, c.id));
    const today = new Date().toLocaleDateString("sv-SE", { timeZone: "Asia/Shanghai" });
    if (c.exp && c.exp < today) {  // the printed validity is part of what is signed: checked offline too
      v.className = "verdict warn";
      v.textContent += " · " + fmt(T.expired_offline, { d: c.exp });
      document.body.dataset.verdict = "expired";
    }
  }

  async function checkOnline() {
    const box = $("online-verdict");
    box.hidden = false;
    try {
      const r = await api("POST", "/api/v1/licences/verify", { token: current.token }, { anonymous: true });
      const key = !r.registered ? "online_unknown" : "online_" + r.status;
      box.className = "verdict " + (r.ok ? "good" : "bad");
      box.textContent = fmt(T[key], { r: r.revoke_reason || "" });
      document.body.dataset.online = r.registered ? r.status : "unknown";
    } catch (e) {
      box.className = "verdict warn";
      box.textContent = T.online_failed;
      document.body.dataset.online = "failed";
    }
  }

  async function run() {
    current = await verifyOffline($("token-input").value);
    show(current);
  }

  // The service worker keeps this page, its scripts and the keys, so it opens and verifies with no network later
  // (a phone that scanned a code once online). It needs a secure origin (HTTPS, or localhost).
  function keepOffline() {
    if (!("serviceWorker" in navigator)) { document.body.dataset.offline = "unsupported"; return; }
    navigator.serviceWorker.register("/licences/sw.js", { scope: "/licences/" }).then(() => navigator.serviceWorker.ready)
      .then(() => {
        document.body.dataset.offline = "ready";
        $("offline-state").textContent = T.offline_ready;
      })
      .catch(() => { document.body.dataset.offline = "failed"; });
  }

  $("verify-form").addEventListener("submit", (e) => { e.preventDefault(); run(); });
  $("verify-online").addEventListener("click", checkOnline);
  refreshCache().then(() => {
    const fromLink = extract(decodeURIComponent(location.hash.slice(1)));
    if (fromLink) { $("token-input").value = fromLink; return run(); }
    return null;
  }).finally(() => { document.body.dataset.ready = "1"; keepOffline(); });
})();
