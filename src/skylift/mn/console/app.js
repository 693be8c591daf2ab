// skylift console: sign in and out, the header, and the router (#/page) that shows one page
// at a time and stops its polling when it is left.
"use strict";

const ROUTES = ["overview", "hosts", "vms", "volumes", "networks", "accounts", "settings", "upgrade"];
let current = { timers: [] };
let release = "";

// The page's handle: every(ms, fn) runs fn now and then every ms until the page is left.
function pageHandle() {
  const handle = { timers: [], left: false };
  handle.every = (ms, fn, { now = true } = {}) => {
    const tick = async () => {
      if (handle.left) return;
      try {
        await fn();
      } catch (err) {
        console.warn("skylift console: refresh failed", err);
      }
    };
    if (now) tick();
    handle.timers.push(setInterval(tick, ms));
  };
  return handle;
}

async function show() {
  for (const t of current.timers) clearInterval(t);
  current.left = true;
  const view = document.getElementById("view");
  if (!SK.token()) {
    signInView(view);
    return;
  }
  const name = (location.hash.match(/^#\/([a-z]+)/) || [])[1];
  const route = ROUTES.includes(name) ? name : "overview";
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.getAttribute("href") === `#/${route}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  current = pageHandle();
  document.title = `skylift · ${route}`;
  await SK.pages[route](view, current);
  view.focus({ preventScroll: true });
}

function signInView(view, message) {
  document.getElementById("nav").hidden = true;
  document.getElementById("sign-out").hidden = true;
  document.getElementById("who").textContent = "";
  const input = SK.h("input", { type: "password", id: "token", name: "token", autocomplete: "off", required: true });
  const out = SK.h("div", { id: "sign-in-error" }, message ? SK.errorBox(message) : null);
  const form = SK.h("form", { id: "sign-in", class: "card" },
    SK.h("h1", {}, "Sign in"),
    SK.h("p", {}, "With an account's API token, or the admin token (",
      SK.h("code", {}, "$SKYLIFT_HOME/mn/admin-token"), " on the MN machine)."),
    SK.h("label", { for: "token" }, "Token"), input,
    SK.h("button", { type: "submit", class: "primary" }, "Sign in"), out);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await SK.signIn(input.value.trim());
    } catch (err) {
      out.replaceChildren(SK.errorBox(err));
      input.select();
      return;
    }
    signedIn();
    if (!location.hash) location.hash = "#/overview";
    else show();
  });
  view.replaceChildren(form);
  input.focus();
}

async function signedIn() {
  document.getElementById("nav").hidden = false;
  document.getElementById("sign-out").hidden = false;
  try {
    const who = await SK.api("/v1/session");
    document.getElementById("who").textContent = who.admin ? "admin" : `account ${SK.short(who.account_uuid)}`;
  } catch (err) { /* a 401 signs out (SK.onSignedOut); anything else: shown on the pages */ }
}

SK.onSignedOut = (err) => {
  SK.forgetToken();
  signInView(document.getElementById("view"), err);
};

document.getElementById("sign-out").addEventListener("click", () => {
  SK.forgetToken();
  SK.notice("Signed out.");
  show();
});

// The header's release and mode, refreshed; the mode tells why lists may be unavailable.
async function header() {
  try {
    const v = await SK.open("/v1/version");
    release = v.release;
    const el = document.getElementById("release");
    el.replaceChildren(`release ${v.release} `, SK.h("span", { class: `mode ${v.mode}` }, v.mode));
  } catch (err) { /* shown by the pages; try again on the next tick */ }
}

window.addEventListener("hashchange", show);
const note = SK.takeUpdateNote();
if (note) {
  SK.notice(`The console moved itself onto release ${note.to}` + (note.from ? ` (from ${note.from})` : "") +
    `: new ${note.changed.join(", ")}. No Ctrl+F5 needed.`, "ok");
  document.getElementById("notice").dataset.updatedTo = note.to;
}
header();
setInterval(header, 5000);
// the release this page's assets are of (the header's may already be the next one's)
const loadedRelease = document.querySelector("meta[name='skylift-release']").content;
SK.watchRelease(() => loadedRelease);
if (SK.token()) signedIn();
show();
