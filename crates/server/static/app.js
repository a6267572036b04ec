// Tidings' web interface: the few things that must be live. Pages work without this script.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

// Validation as you type: the server answers with the errors each field would get. Only fields the person
// has touched show them (an untouched field keeps what the last Save said), each marked for assistive
// technology too.
function validateAsYouType(form) {
  let timer;
  const touched = new Set();
  const check = async () => {
    const body = new URLSearchParams(new FormData(form));
    const response = await fetch(form.dataset.validate, { method: "POST", body, credentials: "same-origin" });
    if (!response.ok) return;
    const { errors, preset } = await response.json();
    for (const slot of form.querySelectorAll("[data-error-for]")) {
      const key = slot.dataset.errorFor;
      if (!touched.has(key)) continue;
      const message = errors[key] ?? "";
      slot.textContent = message;
      slot.closest(".field")?.classList.toggle("invalid", message !== "");
      const input = form.querySelector(`[name="${key}"]`);
      if (input) {
        if (message) input.setAttribute("aria-invalid", "true"); else input.removeAttribute("aria-invalid");
      }
    }
    showPresetEffect(form, preset ?? []);
  };
  const touch = (e) => { if (e.target.name) touched.add(e.target.name); };
  form.addEventListener("input", (e) => { touch(e); clearTimeout(timer); timer = setTimeout(check, 400); });
  form.addEventListener("change", (e) => { touch(e); clearTimeout(timer); timer = setTimeout(check, 100); });
}

// A newly chosen provider fills its relay, endpoints and scopes: say which fields it would change, from what to
// what, before anything is saved, and let the person keep their own values instead.
function showPresetEffect(form, changes) {
  const panel = form.querySelector("#preset-effect");
  if (!panel) return;
  const kept = new Set([...form.querySelectorAll('input[name="keep"]')].map((i) => i.value));
  const open = changes.filter((c) => !kept.has(c.key));
  panel.hidden = open.length === 0;
  if (panel.hidden) return;
  panel.replaceChildren();
  const title = document.createElement("p");
  title.append(Object.assign(document.createElement("strong"), { textContent: panel.dataset.title }));
  const list = document.createElement("ul");
  for (const c of open) {
    const item = document.createElement("li");
    item.append(Object.assign(document.createElement("strong"), { textContent: c.label }), `: ${c.from || "—"} → ${c.to}`);
    list.append(item);
  }
  const apply = Object.assign(document.createElement("button"), { type: "button", textContent: panel.dataset.apply });
  const keep = Object.assign(document.createElement("button"), { type: "button", className: "secondary", textContent: panel.dataset.keep });
  apply.addEventListener("click", () => {
    for (const c of open) {
      const input = form.querySelector(`[name="${c.key}"]`);
      if (input && input.type !== "checkbox") input.value = c.to;
    }
    panel.hidden = true;
  });
  keep.addEventListener("click", () => {
    for (const c of open) form.append(Object.assign(document.createElement("input"), { type: "hidden", name: "keep", value: c.key }));
    panel.replaceChildren(Object.assign(document.createElement("p"), { textContent: panel.dataset.kept }));
  });
  panel.append(title, list, apply, " ", keep);
}

// Only the fields of the chosen authentication type.
function followAuthentication(form) {
  const auth = form.querySelector('select[name="smtp.auth"]');
  if (!auth) return;
  const show = () => {
    const kind = auth.value;
    for (const key of ["smtp.username", "smtp.password"]) {
      const field = form.querySelector(`.field[data-key="${key}"]`);
      if (field) field.hidden = kind !== "password";
    }
    const oauth = form.querySelector("#section-oauth");
    if (oauth) oauth.hidden = kind !== "oauth2";
  };
  auth.addEventListener("change", show);
  show();
}

// The device-code panel: a countdown, and the token status replaced as soon as it changes.
function followDeviceSignIn(panel) {
  const expires = Date.parse(panel.dataset.expiresAt);
  const countdown = panel.querySelector("#countdown");
  const status = document.querySelector("#token-status");
  let last = null;
  const tick = () => {
    const left = Math.max(0, Math.round((expires - Date.now()) / 1000));
    countdown.textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
    if (left === 0) panel.querySelector("#device-expired").hidden = false;
  };
  const poll = async () => {
    const response = await fetch(status.dataset.statusUrl, { credentials: "same-origin" });
    if (!response.ok) return;
    const { state } = await response.json();
    if (state !== last) {
      last = state;
      const page = await fetch("/oauth", { credentials: "same-origin" }).then((r) => r.text());
      const fresh = new DOMParser().parseFromString(page, "text/html").querySelector("#token-status");
      if (fresh) status.innerHTML = fresh.innerHTML;
    }
    if (state === "active" || state === "acquired") {
      panel.querySelector("#device-done").hidden = false;
      // The countdown means nothing once the code was used: it goes rather than stand still.
      panel.querySelector("#device-countdown")?.setAttribute("hidden", "");
      panel.querySelector(".user-code").classList.add("used");
      clearInterval(timers.tick);
      clearInterval(timers.poll);
    }
  };
  const timers = { tick: setInterval(tick, 1000), poll: setInterval(poll, 2000) };
  tick();
}

// The status page follows the daemon: its panel is fetched again every few seconds and put in place.
function followStatus(panel) {
  const every = Number(panel.dataset.every || 5000);
  setInterval(async () => {
    const current = document.querySelector("#status-panel");
    const response = await fetch(current.dataset.refresh, { credentials: "same-origin" }).catch(() => null);
    if (!response?.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html").querySelector("#status-panel");
    if (!fresh) return;
    // Each part in place, so that the live region (the overall line) speaks only when the state changes.
    for (const part of fresh.querySelectorAll("[data-part]")) {
      const old = current.querySelector(`[data-part="${part.dataset.part}"]`);
      if (!old || old.innerHTML === part.innerHTML) continue;
      old.innerHTML = part.innerHTML;
      old.className = part.className;
    }
  }, every);
}

// Copies an element's text. navigator.clipboard exists only on HTTPS and localhost; on plain HTTP from a LAN
// address the text is copied through a selection instead. Either way the button's neighbour says what happened.
async function copy(button) {
  const text = document.querySelector(button.dataset.copy)?.textContent ?? "";
  const said = button.parentElement.querySelector(".copy-said");
  let done = false;
  try {
    if (navigator.clipboard && window.isSecureContext) { await navigator.clipboard.writeText(text); done = true; }
  } catch { done = false; }
  if (!done) {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.append(area);
    area.select();
    try { done = document.execCommand("copy"); } catch { done = false; }
    area.remove();
  }
  if (said) {
    said.textContent = done ? button.dataset.copied : button.dataset.copyFailed;
    setTimeout(() => { said.textContent = ""; }, 4000);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const status = document.querySelector("#status-panel[data-refresh]");
  if (status) followStatus(status);
  document.querySelector("#error-summary")?.focus();
  const config = document.querySelector("form[data-validate]");
  if (config) { validateAsYouType(config); followAuthentication(config); }
  const panel = document.querySelector("#device[data-expires-at]");
  if (panel) followDeviceSignIn(panel);
  for (const button of document.querySelectorAll("[data-copy]")) button.addEventListener("click", () => copy(button));
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (e) => { if (!confirm(form.dataset.confirm)) e.preventDefault(); });
  }
});

// For scripts calling the API with this session.
window.tidings = { csrf };
