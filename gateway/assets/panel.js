// Gatehouse panel: a little plain JavaScript, no build step, no inline
// script (the CSP forbids it). Rows are built with textContent only.
"use strict";

// Sound: a short tone on a new alarm and on a car waiting for a decision,
// and a ring every few seconds while a door station's call waits.
// Off until the guard switches it on (browsers allow sound only after a
// tap); the choice is remembered on this device.
const gatehouseSound = (function () {
  const KEY = "gatehouse-sound";
  const button = document.getElementById("sound-toggle");
  let ctx = null;
  const on = () => window.localStorage && localStorage.getItem(KEY) === "on";
  const show = () => {
    if (!button) return;
    button.textContent = on() ? button.dataset.on : button.dataset.off;
    button.setAttribute("aria-pressed", on() ? "true" : "false");
  };
  const tone = (freq, ms) => {
    if (!on()) return;
    try {
      ctx = ctx || new (window.AudioContext || window.webkitAudioContext)();
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = freq;
      osc.connect(gain);
      gain.connect(ctx.destination);
      gain.gain.setValueAtTime(0.25, ctx.currentTime);
      osc.start();
      osc.stop(ctx.currentTime + ms / 1000);
    } catch (e) { /* no audio on this device */ }
  };
  if (button) {
    button.addEventListener("click", () => {
      localStorage.setItem(KEY, on() ? "off" : "on");
      show();
      tone(660, 120);
    });
  }
  show();
  return {
    alarm: () => { tone(880, 250); setTimeout(() => tone(880, 250), 350); },
    waiting: () => tone(660, 300),
    ring: () => { tone(740, 200); setTimeout(() => tone(587, 300), 250); },
  };
})();

(function () {
  // Live events: server-sent events prepend entries; the list keeps
  // MAX_ROWS. New active alarms also join the alarm strip, which keeps
  // them until acknowledged.
  const MAX_ROWS = 300;
  const list = document.getElementById("events");
  const status = document.getElementById("live-status");
  if (!list || !list.dataset.stream || !status) return;
  const strip = document.getElementById("alarm-strip");
  const stripItems = document.getElementById("strip-items");
  const stripCount = document.getElementById("strip-count");
  const csrf = document.querySelector('meta[name="csrf-token"]');
  const setStatus = (on, text) => {
    status.textContent = text;
    status.className = "status " + (on ? "on" : "off");
  };
  const span = (text, cls) => {
    const s = document.createElement("span");
    if (cls) s.className = cls;
    if (text) s.textContent = text;
    return s;
  };
  const what = (e) => {
    const w = span("", "what");
    if (e.alarm) { w.appendChild(span(list.dataset.badgeAlarm, "badge alarm")); w.append(" "); }
    if (e.cleared) { w.appendChild(span(list.dataset.badgeCleared, "badge cleared")); w.append(" "); }
    if (e.verdict) { w.appendChild(span(e.verdict_label, "badge verdict " + e.verdict)); w.append(" "); }
    w.appendChild(span(e.kind_label, "kind"));
    w.append(" ");
    w.appendChild(span(e.class_label, "cls"));
    return w;
  };
  const entry = (e) => {
    const li = document.createElement("li");
    li.className = "ev fresh class-" + e.class + (e.alarm ? " alarm" : "") +
      (e.cleared ? " cleared" : "") + (e.blacklisted ? " blacklisted" : "") +
      (e.verdict ? " verdict-" + e.verdict : "");
    li.dataset.seq = e.seq;
    li.appendChild(span(e.time, "time"));
    li.appendChild(span(e.device, "device"));
    li.appendChild(what(e));
    li.appendChild(span(e.summary, "detail"));
    if (e.image) {
      const a = document.createElement("a");
      a.className = "img";
      a.href = e.image;
      const i = document.createElement("img");
      i.src = e.image;
      i.alt = list.dataset.imageLabel || "";
      a.appendChild(i);
      li.appendChild(a);
    }
    return li;
  };
  const toStrip = (e) => {
    if (!strip || !stripItems || !csrf) return;
    const li = document.createElement("li");
    li.className = "strip-alarm fresh";
    li.dataset.seq = e.seq;
    const w = span("", "what");
    w.appendChild(span(list.dataset.badgeAlarm, "badge alarm"));
    w.append(" " + e.kind_label + " · " + e.device);
    li.appendChild(w);
    li.appendChild(span(e.summary, "detail"));
    li.appendChild(span(e.time, "time"));
    const form = document.createElement("form");
    form.method = "post";
    form.action = "/live/ack/" + encodeURIComponent(e.seq);
    form.className = "inline";
    const token = document.createElement("input");
    token.type = "hidden";
    token.name = "csrf";
    token.value = csrf.content;
    const button = document.createElement("button");
    button.type = "submit";
    button.className = "ack";
    button.textContent = strip.dataset.ackLabel;
    form.appendChild(token);
    form.appendChild(button);
    li.appendChild(form);
    stripItems.insertBefore(li, stripItems.firstChild);
    strip.classList.remove("empty");
    if (stripCount) stripCount.textContent = String(stripItems.children.length);
  };
  const source = new EventSource(list.dataset.stream);
  source.onopen = () => setStatus(true, status.dataset.connected);
  source.onerror = () => setStatus(false, status.dataset.disconnected);
  source.addEventListener("ev", (msg) => {
    const e = JSON.parse(msg.data);
    const empty = document.getElementById("live-empty");
    if (empty) empty.remove();
    list.insertBefore(entry(e), list.firstChild);
    while (list.children.length > MAX_ROWS) list.removeChild(list.lastChild);
    if (e.alarm || e.blacklisted) {
      if (e.alarm) toStrip(e);
      gatehouseSound.alarm();
    } else if (e.verdict === "ask") {
      gatehouseSound.waiting();
    }
  });
  source.addEventListener("lagged", () => setStatus(true, status.dataset.lagged));
})();

(function () {
  // Forms that ask before doing something that cannot be undone.
  document.addEventListener("submit", (ev) => {
    const form = ev.target;
    if (form && form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      ev.preventDefault();
    }
  });
  // A form is sent once: its buttons are disabled after the first submit
  // (the server also refuses a repeated one-time key).
  document.addEventListener("submit", (ev) => {
    const form = ev.target;
    if (ev.defaultPrevented || !form || form.method !== "post") return;
    setTimeout(() => form.querySelectorAll("button").forEach((b) => { b.disabled = true; }), 0);
  });
})();

(function () {
  // Lanes board: fetch the changing part every 2 s and swap it in, unless
  // the guard is typing, touching it, or has a command sheet open. A new
  // waiting car sounds (when sound is on).
  const INTERVAL_MS = 2000;
  const HOLD_MS = 1500;
  let touchedAt = 0;
  const busy = (now) =>
    now.contains(document.activeElement) ||
    now.querySelector("details[open]") ||
    Date.now() - touchedAt < HOLD_MS;
  document.addEventListener("pointerdown", (ev) => {
    const live = document.getElementById("lanes-live");
    if (live && live.contains(ev.target)) touchedAt = Date.now();
  });
  const refresh = () => {
    const current = document.getElementById("lanes-live");
    if (!current || !current.dataset.live) return;
    fetch(current.dataset.live, { credentials: "same-origin", cache: "no-store" })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((html) => {
        const now = document.getElementById("lanes-live");
        if (!now || busy(now)) return;
        const doc = new DOMParser().parseFromString(html, "text/html");
        const next = doc.getElementById("lanes-live");
        if (!next) return;
        if (next.dataset.sig === now.dataset.sig) {
          // Nothing changed but the reads' ages: update those in place.
          next.querySelectorAll(".pending-read").forEach((read) => {
            const here = document.getElementById(read.id);
            if (!here) return;
            ["age", "left"].forEach((cls) => {
              const from = read.querySelector("." + cls);
              const to = here.querySelector("." + cls);
              if (from && to) to.textContent = from.textContent;
            });
          });
          return;
        }
        const before = Number(now.dataset.waiting || 0);
        const after = Number(next.dataset.waiting || 0);
        now.replaceWith(document.importNode(next, true));
        if (after > before) gatehouseSound.waiting();
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

(function () {
  // Ringing banner, on every page: the calls waiting at the door stations
  // come over server-sent events (the whole set on every change); each
  // has the caller's snapshot when there is one and, for those who may
  // open doors, an unlock form (reason required, CSRF token, one-time
  // key). Calls already shown keep their node, so a reason being typed
  // survives an update. Rings while a call waits (when sound is on).
  const RING_EVERY_MS = 4000;
  const banner = document.getElementById("ring-banner");
  const list = document.getElementById("ring-calls");
  if (!banner || !list || !banner.dataset.stream || !window.EventSource) return;
  const csrf = document.querySelector('meta[name="csrf-token"]');
  const d = banner.dataset;
  let ringer = null;
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text) e.textContent = text;
    return e;
  };
  const hidden = (name, value) => {
    const i = el("input");
    i.type = "hidden";
    i.name = name;
    i.value = value;
    return i;
  };
  const onceKey = () => {
    const b = new Uint8Array(16);
    window.crypto.getRandomValues(b);
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  };
  const snapshot = (li, src) => {
    let img = li.querySelector("img.ring-snap");
    if (!src) return;
    if (!img) {
      img = el("img", "ring-snap");
      img.alt = d.snapshot;
      li.insertBefore(img, li.firstChild);
    }
    if (img.getAttribute("src") !== src) img.src = src;
  };
  const item = (r) => {
    const li = el("li", "ring-call");
    li.dataset.key = r.key;
    const what = el("span", "ring-what");
    what.appendChild(el("strong", "", d.title));
    what.append(" " + r.name + " " + d.calls + " " + r.unit + " ");
    what.appendChild(el("span", "time", r.since));
    li.appendChild(what);
    if (d.canUnlock && csrf) {
      const form = el("form", "ring-unlock");
      form.method = "post";
      form.action = r.unlock;
      form.appendChild(hidden("csrf", csrf.content));
      form.appendChild(hidden("key", onceKey()));
      form.appendChild(hidden("next", d.here || "/"));
      const reason = el("input");
      reason.name = "reason";
      reason.maxLength = 200;
      reason.required = true;
      reason.placeholder = d.reason;
      reason.setAttribute("aria-label", d.reason);
      form.appendChild(reason);
      const button = el("button", "unlock", d.unlock);
      button.type = "submit";
      form.appendChild(button);
      li.appendChild(form);
    }
    snapshot(li, r.snapshot);
    return li;
  };
  const show = (calls) => {
    const have = new Map();
    Array.from(list.children).forEach((li) => have.set(li.dataset.key, li));
    const keys = new Set(calls.map((r) => r.key));
    have.forEach((li, key) => { if (!keys.has(key)) li.remove(); });
    let fresh = false;
    calls.forEach((r) => {
      const li = have.get(r.key);
      if (li) {
        snapshot(li, r.snapshot);
      } else {
        list.appendChild(item(r));
        fresh = true;
      }
    });
    banner.hidden = calls.length === 0;
    if (calls.length === 0) {
      if (ringer) clearInterval(ringer);
      ringer = null;
    } else if (fresh || !ringer) {
      gatehouseSound.ring();
      if (!ringer) ringer = setInterval(() => gatehouseSound.ring(), RING_EVERY_MS);
    }
  };
  const source = new EventSource(d.stream);
  source.addEventListener("ring", (msg) => show(JSON.parse(msg.data)));
  // A page being left closes its stream at once (the listener counts it).
  window.addEventListener("pagehide", () => source.close());
})();
