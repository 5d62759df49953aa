// 处置任务: the handler's department's tasks with their incidents; 签收, 先行联系, 申请延期, 退单, 办结.
(function () {
  "use strict";
  const CB = window.CB;
  const { T, el, get, api, fmt, when, timeLeft, name, dot, badge, say, sayError, hush } = CB;
  const $ = (id) => document.getElementById(id);
  let cats = null, deptName = null, showing = "pending,accepted";

  function fact(label, ...value) {
    return [el("dt", {}, label), el("dd", {}, ...value)];
  }

  // One small form per action; a refusal is shown on the card, a success reloads the list.
  function actionForm(action, task, inc, ...fields) {
    const label = T["act_" + action.replace("-", "_")];
    return el("form", { class: "act", dataset: { action }, onsubmit: (e) => run(e, action, task, inc) },
      ...fields, el("button", { type: "submit", class: action === "complete" || action === "accept" ? "primary" : "" }, label));
  }

  function card(task, inc) {
    const cat = cats.byCode[inc.category_code];
    const open = task.status === "pending" || task.status === "accepted";
    const mine = el("div", { class: "msg", role: "alert", hidden: true });
    const forms = !open ? [] : [
      task.status === "pending" ? actionForm("accept", task, inc) : null,
      actionForm("first-contact", task, inc, el("input", { name: "note", placeholder: T.note, "aria-label": T.act_first_contact + " " + T.note })),
      actionForm("extension", task, inc, el("span", { class: "unit" }, T.days),
        el("input", { name: "days", type: "number", min: "1", max: "30", value: "3", class: "days", "aria-label": T.days }),
        el("input", { name: "reason", placeholder: T.reason, "aria-label": T.act_extension + " " + T.reason })),
      actionForm("return", task, inc, el("input", { name: "reason", placeholder: T.reason, "aria-label": T.act_return + " " + T.reason })),
      actionForm("complete", task, inc, el("input", { name: "result", placeholder: T.result, class: "wide", "aria-label": T.result })),
    ];
    return el("li", { class: "task card", dataset: { taskId: task.id, incidentId: inc.id, code: inc.code, status: task.status } },
      el("div", { class: "task-head" }, dot(inc.light), el("b", { class: "code" }, inc.code), badge(inc.status),
        el("span", { class: "tag" }, fmt(T.task_of, { id: task.id }), " · ", name("task_role", task.role), " · ",
          name("task_status", task.status)),
        el("span", { class: "left l-" + inc.light }, timeLeft(inc))),
      el("dl", { class: "facts" },
        fact(T.category, `${inc.category_code} ${cat ? cat.major_name + " / " + cat.name : ""}`, " · ",
          name("priority", inc.priority)),
        fact(T.description, inc.description),
        fact(T.address, inc.address_text || `${inc.lon.toFixed(5)}, ${inc.lat.toFixed(5)}`),
        fact(T.reporter, inc.reporter_name || "–", " ", el("span", { class: "phone" }, inc.reporter_phone || "")),
        fact(T.deadline, inc.deadline_at ? when(inc.deadline_at) : T.no_deadline),
        fact(T.assigned_at, when(task.created_at), task.accepted_at ? ` · ${T.accepted_at} ${when(task.accepted_at)}` : ""),
        inc.extension_days ? fact(T.act_extension, fmt(T.extension_pending, { n: inc.extension_days, r: inc.extension_reason || "" })) : null,
        task.result ? fact(T.task_result, task.result) : null,
        fact(T.routing, (inc.routing && inc.routing.why) || "–")),
      forms.length ? el("div", { class: "task-actions" }, forms) : null,
      mine);
  }

  async function run(e, action, task, inc) {
    e.preventDefault();
    const form = e.target, f = new FormData(form);
    const text = (k) => (f.get(k) || "").toString();
    const body = { task_id: task.id };
    if (action === "first-contact") body.note = text("note") || null;
    if (action === "extension") { body.days = Number(text("days")) || 0; body.reason = text("reason"); }
    if (action === "return") body.reason = text("reason");
    if (action === "complete") body.result = text("result");
    const li = form.closest("li"), box = li.querySelector(".msg");
    form.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    try {
      const after = await api("POST", `/api/v1/ops/incidents/${inc.id}/${action}`, body);
      await load();
      say($("tasks-msg"), "ok", fmt(T.done_ok, { a: T["act_" + action.replace("-", "_")] }) +
        ` · ${after.code} → ${name("status", after.status)}`);
    } catch (err) {
      sayError(box, err);
      form.querySelectorAll("button").forEach((b) => { b.disabled = false; });
    }
  }

  async function load() {
    const tasks = await get("/api/v1/ops/tasks?" + new URLSearchParams({ status: showing }));
    const incidents = await Promise.all(tasks.map((t) => get("/api/v1/ops/incidents/" + t.incident_id)));
    const list = $("tasks");
    list.innerHTML = "";
    tasks.forEach((t, i) => list.appendChild(card(t, incidents[i])));
    $("tasks-empty").hidden = tasks.length > 0;
    document.body.dataset.tasks = String(tasks.length);
  }

  function toggle(which) {
    showing = which === "open" ? "pending,accepted" : "done,returned";
    $("show-open").classList.toggle("on", which === "open");
    $("show-done").classList.toggle("on", which !== "open");
    hush($("tasks-msg"));
    load().catch((err) => sayError($("tasks-msg"), err));
  }

  async function start() {
    const me = await CB.requireUser(["handler", "admin"]);
    [cats, deptName] = await Promise.all([CB.categories(), CB.departments()]);
    $("dept-name").textContent = me.department_id === null ? "" : deptName(me.department_id);
    $("show-open").addEventListener("click", () => toggle("open"));
    $("show-done").addEventListener("click", () => toggle("done"));
    try {
      await load();
    } catch (err) {
      sayError($("tasks-msg"), err);
    }
    document.body.dataset.ready = "1";
  }

  start().catch((err) => {
    console.error(err);
    document.body.dataset.ready = "error";
  });
})();
