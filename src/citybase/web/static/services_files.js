// The files an applicant uploads for the materials they bring, shared by the apply wizard (and the counter), the
// home page's 补正 form and the clerk's workbench: upload with progress (XMLHttpRequest: fetch reports none),
// the files listed with name and size, a remove button while the application may change, downloads (the
// bearer token goes in a header, so a download is fetched and handed to the browser as a named blob).
(function () {
  "use strict";
  const CB = window.CB;
  const { T, el, fmt, token, ApiError, LANG, api, get } = CB;
  const ACCEPT = ".pdf,.jpg,.jpeg,.png,.ofd,application/pdf,image/jpeg,image/png,application/ofd";
  const base = (appId) => `/api/v1/services/applications/${appId}`;

  function size(n) {
    if (n < 1024) return n + " B";
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KB";
    return (n / 1024 / 1024).toFixed(1) + " MB";
  }

  const list = (appId) => get(base(appId) + "/files");

  // POST one file as multipart; onProgress(0..100) while it goes; resolves to the file kept, rejects with ApiError.
  function upload(appId, key, file, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", `${base(appId)}/materials/${encodeURIComponent(key)}`);
      xhr.setRequestHeader("Authorization", "Bearer " + token());
      xhr.setRequestHeader("Accept", "application/json, application/problem+json");
      xhr.setRequestHeader("Accept-Language", LANG);
      xhr.upload.onprogress = (e) => { if (e.lengthComputable && onProgress) onProgress(Math.round((e.loaded / e.total) * 100)); };
      xhr.onload = () => {
        let body = null;
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = { detail: xhr.responseText.slice(0, 300) }; }
        if (xhr.status >= 200 && xhr.status < 300) resolve(body);
        else reject(new ApiError(xhr.status, body || { detail: "HTTP " + xhr.status }));
      };
      xhr.onerror = () => reject(new Error(T.sv_upload_failed));
      const form = new FormData();
      form.append("file", file, file.name);
      xhr.send(form);
    });
  }

  // Fetch the file with the token and let the browser save it under its own (UTF-8) name.
  async function download(f) {
    const r = await fetch(f.url, { headers: { Authorization: "Bearer " + token(), "Accept-Language": LANG } });
    if (!r.ok) {
      let problem = {};
      try { problem = await r.json(); } catch (e) { /* not JSON */ }
      throw new ApiError(r.status, problem);
    }
    const url = URL.createObjectURL(await r.blob());
    const a = el("a", { href: url, download: f.name, hidden: true });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }

  const remove = (f) => api("DELETE", f.url);

  // One file as a row: its name (a download link), type and size, who brought it when, a remove button.
  function fileRow(f, opts) {
    const o = opts || {};
    const link = el("a", { href: f.url, class: "file-name", onclick: (e) => {
      e.preventDefault();
      download(f).catch((err) => (o.onError ? o.onError(err) : null));
    } }, f.name);
    return el("li", { dataset: { file: f.id, material: f.material_key, sha256: f.sha256 } },
      link, el("span", { class: "file-meta" }, `${f.content_type.split("/")[1].toUpperCase()} · ${size(f.size)}`),
      o.who ? el("span", { class: "file-meta" }, `${f.uploaded_by.split(":").pop()} · ${CB.when(f.uploaded_at)}`) : null,
      f.stage === "correction" ? el("span", { class: "tag" }, T.sv_act_correct) : null,
      o.editable ? el("button", { type: "button", class: "remove", onclick: () => o.onRemove(f) }, T.sv_remove) : null);
  }

  // The upload box of one material: a file input, the upload's status, the files kept and their remove buttons.
  // onChange(files of this material) after every upload or removal.
  function picker(appId, key, files, opts) {
    const o = opts || {};
    const status = el("span", { class: "up-status", role: "status" });
    const ul = el("ul", { class: "sv-files" });
    const err = o.errorBox || el("div", { class: "err" });
    let mine = files.filter((f) => f.material_key === key);
    const draw = () => {
      ul.innerHTML = "";
      mine.forEach((f) => ul.appendChild(fileRow(f, { editable: true, onRemove, onError: show })));
    };
    const show = (e) => { err.textContent = (e.problem && (e.problem.detail + (e.problem.fix ? " " + e.problem.fix : ""))) || e.message; };
    async function onRemove(f) {
      try {
        await remove(f);
        mine = mine.filter((x) => x.id !== f.id);
        draw();
        status.textContent = fmt(T.sv_removed, { name: f.name });
        if (o.onChange) o.onChange(mine);
      } catch (e) { show(e); }
    }
    const input = el("input", { type: "file", class: "upload", accept: ACCEPT, "aria-label": T.sv_upload, onchange: async () => {
      const chosen = [...input.files];
      err.textContent = "";
      for (const file of chosen) {
        status.textContent = fmt(T.sv_uploading, { name: file.name, p: 0 });
        try {
          const f = await upload(appId, key, file, (p) => { status.textContent = fmt(T.sv_uploading, { name: file.name, p }); });
          if (!mine.some((x) => x.id === f.id)) mine.push(f);
          draw();
          status.textContent = fmt(T.sv_uploaded, { name: f.name });
          if (o.onChange) o.onChange(mine);
        } catch (e) { status.textContent = ""; show(e); }
      }
      input.value = "";
    } });
    draw();
    const hint = el("span", { class: "hint" }, T.sv_upload_hint);
    return el("div", { class: "sv-upload", dataset: { key } }, el("label", { class: "button" }, T.sv_upload, input), hint, status, ul,
      o.errorBox ? null : err);
  }

  CB.files = { ACCEPT, size, list, upload, download, remove, fileRow, picker };
})();
