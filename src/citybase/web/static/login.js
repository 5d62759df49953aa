// Sign-in: a pasted token is checked against /api/v1/me, kept in localStorage, and the person sent on.
// 统一身份认证: when the platform has OpenID Connect on (GET /api/v1/auth/oidc), a button starts the
// authorization-code flow with PKCE; the issuer sends the browser back here (?code=&state=), the code and its
// verifier go to POST /api/v1/auth/oidc/token, and the verified ID token is kept like a pasted token.
(function () {
  "use strict";
  const CB = window.CB;
  const { T, get, api, say, sayError, hush, token, setToken, clearToken, showWho } = CB;
  const params = new URLSearchParams(location.search);
  const PENDING = "citybase.oidc";  // the flow under way, in sessionStorage: state, nonce, verifier, next
  const pending = (() => {
    try { return JSON.parse(sessionStorage.getItem(PENDING) || "null"); } catch (e) { return null; }
  })();
  const callback = params.has("code") || params.has("error");
  // Only a path of this site: never an open redirect.
  const rawNext = (callback && pending ? pending.next : params.get("next")) || "";
  const next = rawNext.startsWith("/") && !rawNext.startsWith("//") ? rawNext : "";
  const msg = document.getElementById("login-msg");

  function showMe(me) {
    document.getElementById("me").hidden = false;
    document.getElementById("me-name").textContent = me.display_name;
    document.getElementById("me-username").textContent = me.username;
    document.getElementById("me-roles").textContent = me.roles.join(", ");
    document.getElementById("me-department").textContent = me.department_id === null ? "–" : "#" + me.department_id;
    showWho(me);
    const go = document.getElementById("go-on");
    // On to where the person was going, or to the page of their role.
    const lang = CB.LANG === "en" ? "?lang=en" : "";
    const home = me.roles.includes("dispatcher") || me.roles.includes("admin") ? ["/ops/workbench", T.nav_workbench]
      : me.roles.includes("handler") ? ["/ops/tasks", T.nav_tasks]
        : me.roles.includes("citizen") ? ["/report", T.nav_report] : null;
    if (next || home) {
      go.hidden = false;
      go.href = next || home[0] + lang;
      go.textContent = T.go_on + " " + (next ? next.split(/[?#]/)[0] : home[1]);
    }
  }

  async function check(goOn) {
    let me;
    try {
      me = await get("/api/v1/me");
    } catch (err) {
      clearToken();
      document.getElementById("me").hidden = true;
      document.getElementById("who").hidden = true;
      say(msg, "refused", T.token_invalid, err.problem && err.problem.detail);
      document.body.dataset.ready = "invalid";
      return;
    }
    hush(msg);
    showMe(me);
    document.body.dataset.ready = "signed-in";
    if (goOn && next) location.assign(next);
  }

  document.getElementById("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const t = document.getElementById("token").value.trim();
    if (!t) return;
    setToken(t);
    document.getElementById("token").value = "";
    check(true);
  });
  document.getElementById("sign-out").addEventListener("click", () => {
    clearToken();
    document.getElementById("me").hidden = true;
    document.getElementById("who").hidden = true;
    say(msg, "ok", T.not_signed_in);
  });

  // ---------------------------------------------------------------- 统一身份认证 (OpenID Connect)

  const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const random = (n) => b64url(crypto.getRandomValues(new Uint8Array(n)));
  // The callback is this page without its query: the address registered with the issuer.
  const redirectUri = location.origin + "/login";

  async function startOidc(cfg) {
    const verifier = random(48);
    const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
    const flow = { state: random(24), nonce: random(24), verifier, next, lang: CB.LANG };
    sessionStorage.setItem(PENDING, JSON.stringify(flow));
    const q = new URLSearchParams({
      response_type: "code", client_id: cfg.client_id, redirect_uri: redirectUri, scope: cfg.scope,
      state: flow.state, nonce: flow.nonce, code_challenge: challenge, code_challenge_method: "S256",
      ui_locales: CB.LANG === "en" ? "en" : "zh-CN",
    });
    location.assign(cfg.authorization_endpoint + (cfg.authorization_endpoint.includes("?") ? "&" : "?") + q);
  }

  async function finishOidc() {
    sessionStorage.removeItem(PENDING);
    // The code must not stay in the address bar or the history.
    const lang = pending && pending.lang === "en" ? "?lang=en" : "";
    history.replaceState(null, "", "/login" + lang);
    if (params.has("error")) {
      say(msg, "refused", T.oidc_failed, params.get("error_description") || params.get("error"));
      document.body.dataset.ready = "oidc-refused";
      return;
    }
    if (!pending || params.get("state") !== pending.state) {
      say(msg, "refused", T.oidc_failed, T.oidc_stale);
      document.body.dataset.ready = "oidc-refused";
      return;
    }
    say(msg, "ok", T.oidc_busy);
    let answer;
    try {
      answer = await api("POST", "/api/v1/auth/oidc/token", {
        code: params.get("code"), code_verifier: pending.verifier, redirect_uri: redirectUri, nonce: pending.nonce,
      }, { anonymous: true });
    } catch (err) {
      sayError(msg, err);
      document.body.dataset.ready = "oidc-refused";
      return;
    }
    setToken(answer.token);
    await check(true);
  }

  async function offerOidc() {
    let cfg;
    try {
      cfg = await get("/api/v1/auth/oidc", { anonymous: true });
    } catch (err) {
      return;  // the identity provider cannot be reached: the token form still works
    }
    if (!cfg.enabled) return;
    document.getElementById("oidc").hidden = false;
    document.getElementById("oidc-sign-in").addEventListener("click", () => {
      startOidc(cfg).catch((err) => sayError(msg, err));
    });
  }

  if (next) document.getElementById("need-login").hidden = false;
  offerOidc().finally(() => {
    if (callback) {
      finishOidc();
    } else if (token()) {
      check(false);
    } else {
      document.body.dataset.ready = "signed-out";
    }
  });
})();
