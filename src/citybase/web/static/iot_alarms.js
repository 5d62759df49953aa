// 物联感知 · 告警: the alarms not yet cleared (newest first; filter by state and severity), each with its device,
// rule, value, the time it was raised (Asia/Shanghai), the incident it became, and the acknowledge/clear buttons.
(function () {
  "use strict";
  const CB = window.CB, IOT = window.IOT;
  const { T, get, fmt, sayError } = CB;
  const $ = (id) => document.getElementById(id);
  const PAGE_SIZE = 50;
  const state = { me: null, types: null, page: 1, loads: 0, seq: 0 };

  async function load() {
    const seq = ++state.seq;
    const p = new URLSearchParams({ page: String(state.page), page_size: String(PAGE_SIZE) });
    if ($("f-state").value) p.set("state", $("f-state").value);
    if ($("f-severity").value) p.set("severity", $("f-severity").value);
    const page = await get("/api/v1/iot/alarms?" + p);
    if (seq !== state.seq) return;
    const pages = Math.max(1, Math.ceil(page.total / PAGE_SIZE));
    const body = $("alarms").querySelector("tbody");
    body.innerHTML = "";
    for (const a of page.items) {
      body.appendChild(IOT.alarmRow(a, { me: state.me, typesBy: state.types.byCode, withDevice: true, box: $("alarm-msg"),
        done: () => Promise.all([load(), IOT.openAlarms()]) }));
    }
    $("alarms-empty").hidden = page.items.length > 0;
    $("list-count").textContent = fmt(T.iot_alarm_count, { n: page.total });
    $("page-of").textContent = fmt(T.iot_page, { p: state.page, n: pages });
    $("prev").disabled = state.page <= 1;
    $("next").disabled = state.page >= pages;
    document.body.dataset.alarmLoads = String(++state.loads);
  }

  async function start() {
    const roles = ($("nav-iot") && $("nav-iot").dataset.roles || "").split(" ").filter(Boolean);
    state.me = await CB.requireUser(roles.length ? roles : null);
    state.types = await IOT.types();
    const report = (err) => sayError($("alarm-msg"), err);
    for (const id of ["f-state", "f-severity"]) $(id).addEventListener("change", () => { state.page = 1; load().catch(report); });
    $("refresh").addEventListener("click", () => Promise.all([load(), IOT.openAlarms()]).catch(report));
    $("prev").addEventListener("click", () => { state.page -= 1; load().catch(report); });
    $("next").addEventListener("click", () => { state.page += 1; load().catch(report); });
    await Promise.all([load(), IOT.openAlarms()]);
    document.body.dataset.ready = "1";
  }

  start().catch((err) => {
    console.error(err);
    sayError($("alarm-msg"), err);
    document.body.dataset.ready = "error";
  });
})();
