// skylift console: sign in and out, the header, and the router (#/page) that shows one page
// at a time and stops its polling when it is left.
"use strict";

const ROUTES = ["overview", "hosts", "vms", "volumes", "networks", "accounts", "settings", "upgrade"];
// what an account's token may read (skylift.mn.access): its own VMs and volumes
const ACCOUNT_ROUTES = ["vms", "volumes"];
const routes = () => (SK.who && !SK.who.admin ? ACCOUNT_ROUTES : ROUTES);
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

// Stop the page shown: its polling ends (a signed-out page must not keep calling the MN).
function leave() {
  for (const t of current.timers) clearInterval(t);
  current.left = true;
}

async function show() {
  leave();
  const view = document.getElementById("view");
  if (!SK.token()) {
    signInView(view);
    return;
  }
  const name = (location.hash.match(/^#\/([a-z]+)/) || [])[1];
  const route = routes().includes(name) ? name : routes()[0];
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.getAttribute("href") === `#/${route}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const mine = current = pageHandle();
  document.title = `skylift · ${route}`;
  await SK.pages[route](view, mine);
  if (current === mine && SK.token()) view.focus({ preventScroll: true });  // not if left since
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
    let who;
    try {
      who = await SK.signIn(input.value.trim());
    } catch (err) {
      out.replaceChildren(SK.errorBox(err));
      input.select();
      return;
    }
    await signedIn(who);
    show();
  });
  view.replaceChildren(form);
  input.focus();
}

// Who the token is decides the pages: the admin sees them all, an account its VMs and volumes.
// `who` is the answer signing in already had; without it (a reload) the MN is asked, and asked
// again while it does not answer (it may be between two releases): a page without its header's
// links would strand the operator. A 401 signs out instead (SK.onSignedOut).
async function signedIn(who) {
  const view = document.getElementById("view");
  while (!who) {
    try {
      who = await SK.api("/v1/session");
    } catch (err) {
      if (!SK.token()) return;
      view.replaceChildren(SK.h("div", { id: "session-wait" }, SK.errorBox(err)));
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  SK.who = who;
  for (const a of document.querySelectorAll("#nav a")) {
    a.hidden = !routes().includes(a.getAttribute("href").slice(2));
  }
  document.getElementById("who").textContent = SK.who.admin ? "admin" : `account ${SK.short(SK.who.account_uuid)}`;
  document.getElementById("nav").hidden = false;
  document.getElementById("sign-out").hidden = false;
}

SK.onSignedOut = (err) => {
  const already = !SK.who && document.getElementById("sign-in");
  leave();
  SK.forgetToken();
  SK.who = null;
  if (already) return;  // a second poll's answer must not wipe what is being typed
  signInView(document.getElementById("view"), err);
};

document.getElementById("sign-out").addEventListener("click", () => {
  SK.forgetToken();
  SK.who = null;
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
// "Skip to content" moves the focus; it is not a page (the router would take #view for one)
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  document.getElementById("view").focus();
});
const note = SK.takeUpdateNote();
if (note) {
  SK.notice(SK.h("span", {},
    `The console moved itself onto release ${note.to}` + (note.from ? ` (from ${note.from})` : "") +
    `: new ${note.changed.join(", ")}. No Ctrl+F5 needed.`,
    (note.notes || []).length ? SK.h("ul", { id: "release-notes" }, note.notes.map((r) =>
      SK.h("li", {}, SK.h("b", {}, r.release), ": ", r.notes.join("; ") || "no notes"))) : null), "ok");
  document.getElementById("notice").dataset.updatedTo = note.to;
}
header();
setInterval(header, 2000);  // the mode changes quickly during an upgrade
// the release this page's assets are of (the header's may already be the next one's)
const loadedRelease = document.querySelector("meta[name='skylift-release']").content;
SK.watchRelease(() => loadedRelease);
(async () => {
  if (SK.token()) await signedIn();
  show();
})();
