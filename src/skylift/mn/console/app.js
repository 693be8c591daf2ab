// skylift console: inventory counts and global settings, through the MN's /v1 API.
"use strict";

const TOKEN_KEY = "skylift-admin-token";

function token() {
  let value = localStorage.getItem(TOKEN_KEY);
  if (!value) {
    value = prompt("Admin token (from $SKYLIFT_HOME/mn/admin-token):") || "";
    if (value) localStorage.setItem(TOKEN_KEY, value.trim());
  }
  return value;
}

async function api(path, options = {}) {
  const headers = Object.assign({ "Authorization": "Bearer " + token() }, options.headers || {});
  const resp = await fetch(path, Object.assign({}, options, { headers }));
  const body = await resp.json().catch(() => ({}));
  if (resp.status === 401) localStorage.removeItem(TOKEN_KEY);
  if (!resp.ok) {
    const err = new Error(body.what || resp.statusText);
    err.status = resp.status;
    throw err;
  }
  return body;
}

function banner(text) {
  const el = document.getElementById("banner");
  el.textContent = text || "";
  el.hidden = !text;
}

function fill(tableId, rows) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement("tr");
    for (const cell of cells) {
      const td = document.createElement("td");
      td.textContent = String(cell);
      tr.appendChild(td);
    }
    return tr;
  }));
}

async function refresh() {
  const version = await fetch("/v1/version").then((r) => r.json());
  document.getElementById("version").textContent = `release ${version.release} (${version.mode})`;
  try {
    const settings = await api("/v1/global-settings");
    fill("settings", settings.settings.map((s) => [s.category, s.name, s.value]));
    const ha = settings.settings.find((s) => s.category === "ha" && s.name === "enable");
    document.getElementById("ha-enable").checked = !!ha && ha.value === "true";
    const counts = await api("/v1/inventory/counts");
    fill("inventory", Object.entries(counts.counts));
    banner("");
  } catch (err) {
    banner(err.status === 503 ? "Upgrade in progress: the console will be back shortly." : err.message);
  }
}

document.getElementById("token-button").addEventListener("click", () => {
  localStorage.removeItem(TOKEN_KEY);
  token();
  refresh();
});

document.getElementById("ha-enable").addEventListener("change", async (event) => {
  try {
    await api("/v1/global-settings/ha/enable", {
      method: "PUT",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ value: event.target.checked }),
    });
  } catch (err) {
    banner(err.message);
  }
  refresh();
});

refresh();
setInterval(refresh, 10000);
