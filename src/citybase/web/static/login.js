// Sign-in: a pasted token is checked against /api/v1/me, kept in localStorage, and the person sent on.
(function () {
  "use strict";
  const CB = window.CB;
  const { T, get, say, hush, token, setToken, clearToken, showWho } = CB;
  const params = new URLSearchParams(location.search);
  // Only a path of this site: never an open redirect.
  const rawNext = params.get("next") || "";
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

  if (next) document.getElementById("need-login").hidden = false;
  if (token()) {
    check(false);
  } else {
    document.body.dataset.ready = "signed-out";
  }
})();
