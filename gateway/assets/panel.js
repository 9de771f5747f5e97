// Gatehouse panel: a little plain JavaScript, no build step, no inline
// script (the CSP forbids it). Rows are built with textContent only.
"use strict";

(function () {
  // Live events: server-sent events prepend rows; the list keeps MAX_ROWS.
  const MAX_ROWS = 300;
  const table = document.getElementById("events");
  const status = document.getElementById("live-status");
  if (table && table.dataset.stream && status) {
    const body = document.getElementById("event-rows");
    const setStatus = (on, text) => {
      status.textContent = text;
      status.className = "status " + (on ? "on" : "off");
    };
    const cell = (text, cls) => {
      const td = document.createElement("td");
      if (cls) td.className = cls;
      if (text) td.textContent = text;
      return td;
    };
    const badge = (text, cls) => {
      const span = document.createElement("span");
      span.className = "badge " + cls;
      span.textContent = text;
      return span;
    };
    const row = (e) => {
      const tr = document.createElement("tr");
      tr.className = "ev fresh class-" + e.class + (e.alarm ? " alarm" : "") + (e.cleared ? " cleared" : "");
      tr.dataset.seq = e.seq;
      tr.appendChild(cell(e.time, "time"));
      tr.appendChild(cell(e.device));
      const kind = cell("");
      if (e.alarm) { kind.appendChild(badge(table.dataset.badgeAlarm, "alarm")); kind.append(" "); }
      if (e.cleared) { kind.appendChild(badge(table.dataset.badgeCleared, "cleared")); kind.append(" "); }
      const label = document.createElement("span");
      label.className = "kind";
      label.textContent = e.kind_label;
      kind.appendChild(label);
      const cls = document.createElement("span");
      cls.className = "cls";
      cls.textContent = " " + e.class_label;
      kind.appendChild(cls);
      tr.appendChild(kind);
      tr.appendChild(cell(e.summary, "detail"));
      const img = cell("", "img");
      if (e.image) {
        const a = document.createElement("a");
        a.href = e.image;
        const i = document.createElement("img");
        i.src = e.image;
        i.alt = "";
        a.appendChild(i);
        img.appendChild(a);
      }
      tr.appendChild(img);
      return tr;
    };
    const source = new EventSource(table.dataset.stream);
    source.onopen = () => setStatus(true, status.dataset.connected);
    source.onerror = () => setStatus(false, status.dataset.disconnected);
    source.addEventListener("ev", (msg) => {
      const e = JSON.parse(msg.data);
      const empty = document.getElementById("live-empty");
      if (empty) empty.remove();
      body.insertBefore(row(e), body.firstChild);
      while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1);
    });
    source.addEventListener("lagged", () => setStatus(true, status.dataset.lagged));
  }

  // Forms that ask before doing something that cannot be undone.
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (ev) => {
      if (!window.confirm(form.dataset.confirm)) ev.preventDefault();
    });
  });
})();

(function () {
  // Lanes board: fetch the changing part every 2 s and swap it in, unless
  // the guard is typing in it.
  const INTERVAL_MS = 2000;
  const refresh = () => {
    const current = document.getElementById("lanes-live");
    if (!current || !current.dataset.live) return;
    fetch(current.dataset.live, { credentials: "same-origin", cache: "no-store" })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((html) => {
        const now = document.getElementById("lanes-live");
        if (!now || now.contains(document.activeElement)) return;
        const doc = new DOMParser().parseFromString(html, "text/html");
        const next = doc.getElementById("lanes-live");
        if (next && next.innerHTML !== now.innerHTML) now.replaceWith(document.importNode(next, true));
      })
      .catch(() => {});
  };
  if (document.getElementById("lanes-live")) setInterval(refresh, INTERVAL_MS);
})();

(function () {
  // CSV import: a picked file is read into the form's text field, which is
  // what is posted (URL-encoded, with the CSRF token).
  document.querySelectorAll("input.csv-file[data-into]").forEach((input) => {
    input.addEventListener("change", () => {
      const target = document.getElementById(input.dataset.into);
      const file = input.files && input.files[0];
      if (!target || !file) return;
      file.text().then((text) => { target.value = text; });
    });
  });
})();
