// skylift console: the pages of the cloud — overview, resource lists, settings.
// A page is a function (view, page) where page.every(ms, fn) polls until the page is left.
"use strict";

SK.pages = {};
const h = SK.h;

// ---- Overview -------------------------------------------------------------------------------

SK.pages.overview = async (view, page) => {
  view.replaceChildren(h("h1", {}, "Overview"), h("div", { id: "overview", class: "cards" }, "Loading…"));
  page.every(5000, async () => {
    const box = document.getElementById("overview");
    const [version, cluster] = await Promise.all([SK.open("/v1/version"), SK.api("/v1/cluster")
      .catch(() => null)]);
    let data, mns;
    try {
      [data, mns] = await Promise.all([SK.api("/v1/overview"), SK.api("/v1/management-nodes")]);
    } catch (err) {
      box.replaceChildren(mnCard(version, cluster, null), h("section", { class: "card wide" }, SK.errorBox(err)));
      return;
    }
    box.replaceChildren(
      mnCard(version, cluster, mns),
      h("section", { class: "card", id: "hosts-by-status" }, SK.bars("Hosts by status", data.hosts_by_status)),
      h("section", { class: "card", id: "vms-by-state" }, SK.bars("VMs by state", data.vms_by_state)),
      h("section", { class: "card", id: "agents-by-version" }, SK.bars("Host and vRouter agents by version", data.agents_by_version)),
      h("section", { class: "card wide" }, SK.table("Resources by kind",
        [{ label: "Kind", value: (r) => r[0] }, { label: "Count", value: (r) => SK.fmt(r[1]), class: () => "num" }],
        Object.entries(data.counts))));
  });
};

function mnCard(version, cluster, mns) {
  const rows = mns ? mns.items : [];
  const vip = cluster && cluster.ha ? h("p", { id: "vip-holder" }, `VIP ${cluster.vip}: `,
    cluster.holds_vip ? `held by this MN, ${cluster.name}` : `held by another MN (this is ${cluster.name})`) : null;
  const members = cluster && cluster.ha ? SK.table("MNs of this HA cloud", [
    { label: "Name", value: (m) => m.name + (m.self ? " (this one)" : "") },
    { label: "Address", value: (m) => m.address },
    { label: "VIP", value: (m) => (m.self && cluster.holds_vip ? "holds it" : "") },
  ], cluster.members) : null;
  return h("section", { class: "card wide", id: "management-nodes" },
    h("h2", {}, "Management nodes"),
    h("p", {}, `This MN: release ${version.release}, `, h("span", { class: `mode ${version.mode}` }, version.mode),
      version.mode !== "normal" ? ` — ${version.reason}` : ""),
    vip, members,
    mns ? SK.table("Live management nodes", [
      { label: "Host name", value: (m) => m.hostname + (m.self ? " (this one)" : "") },
      { label: "Release", value: (m) => m.release },
      { label: "PID", value: (m) => m.pid },
      { label: "Resources driven", value: (m) => SK.fmt(m.resources_owned), class: () => "num" },
      { label: "Heartbeat", value: (m) => m.heartbeat_at },
    ], rows) : null);
}

// ---- Resource lists -------------------------------------------------------------------------

const PAGE_SIZE = 50;

// A searchable, paged list of one kind: {kind, title, columns, actions(row, reload)}.
function listOf(spec) {
  return async (view, page) => {
    const state = { q: "", offset: 0, limit: PAGE_SIZE };
    const id = `list-${spec.kind}`;
    const search = h("input", { type: "search", id: `${id}-q`, name: "q", autocomplete: "off",
      placeholder: "name, uuid, address, state…" });
    const body = h("div", { id, "aria-busy": "true" });
    let timer;
    search.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => { state.q = search.value; state.offset = 0; load(); }, 250);
    });
    let asked = 0;  // the newest load: an older answer that arrives later is dropped
    const load = async () => {
      const mine = ++asked;
      body.setAttribute("aria-busy", "true");
      const params = new URLSearchParams({ limit: state.limit, offset: state.offset });
      if (state.q.trim()) params.set("q", state.q.trim());
      try {
        const data = await SK.api(`/v1/${spec.kind}?${params}`);
        if (mine !== asked) return;
        const columns = spec.columns.concat(spec.actions ? [{ label: "Actions",
          value: (row) => spec.actions(row, load) }] : []);
        body.replaceChildren(SK.table(`${spec.title}: ${SK.fmt(data.total)}`, columns, data.items),
          SK.pager(state, data.total, (offset) => { state.offset = offset; load(); }));
      } catch (err) {
        if (mine !== asked) return;
        body.replaceChildren(SK.errorBox(err));
      }
      body.setAttribute("aria-busy", "false");
    };
    const section = h("section", { class: "list" },
      spec.heading === false ? null : h("h1", {}, spec.title),
      h("form", { class: "search", role: "search", onsubmit: (e) => { e.preventDefault(); state.q = search.value; state.offset = 0; load(); } },
        h("label", { for: search.id }, `Search ${spec.noun}`), search),
      body);
    if (spec.into) spec.into.append(section); else view.replaceChildren(section);
    await load();
    if (spec.refreshMs) page.every(spec.refreshMs, load, { now: false });
  };
}

const col = (label, key, fn) => ({ label, value: (r) => (fn ? fn(r[key], r) : r[key] ?? "") });
const statusCol = (label, key) => ({ label, value: (r) => h("span", { class: `status s-${String(r[key]).toLowerCase()}` }, r[key] ?? ""), });

SK.pages.hosts = listOf({ kind: "hosts", title: "Hosts", noun: "hosts", refreshMs: 10000, columns: [
  col("Name", "name"), col("Address", "management_ip"), statusCol("Status", "status"), col("State", "state"),
  col("Agent", "agent_version"), col("OS", "os_release"), col("QEMU", "qemu_version"),
  col("Cluster", "cluster_uuid", SK.short)] });

SK.pages.vms = listOf({ kind: "vm_instances", title: "VMs", noun: "VMs", columns: [
  col("Name", "name"), statusCol("State", "state"), col("Host", "host_uuid", SK.short),
  col("HA", "ha_level"), col("vCPUs", "cpu_num"),
  col("Memory", "memory_size", (m) => (m ? `${Math.round(m / 1048576)} MiB` : ""))],
  actions: (vm, reload) => vmActions(vm, reload) });

SK.pages.volumes = listOf({ kind: "volumes", title: "Volumes", noun: "volumes", columns: [
  col("Name", "name"), col("Type", "type"), col("Size", "size", (s) => (s ? `${(s / 1073741824).toFixed(1)} GiB` : "")),
  statusCol("Status", "status"), col("State", "state"), col("VM", "vm_uuid", SK.short)] });

SK.pages.networks = async (view, page) => {
  view.replaceChildren(h("h1", {}, "Networks"));
  await listOf({ kind: "l3_networks", title: "L3 networks", noun: "L3 networks", heading: false, into: view, columns: [
    col("Name", "name"), col("Category", "category"), col("Type", "type"), col("DNS domain", "dns_domain")] })(view, page);
  await listOf({ kind: "vpc_vrouters", title: "VPC vRouters", noun: "VPC vRouters", heading: false, into: view, refreshMs: 10000, columns: [
    col("Name", "name"), col("Address", "management_ip"), statusCol("Status", "status"), col("State", "state"),
    col("HA", "ha_status"), col("Agent", "agent_version")] })(view, page);
};

SK.pages.accounts = listOf({ kind: "accounts", title: "Accounts", noun: "accounts", columns: [
  col("Name", "name"), col("Type", "type"), col("UUID", "uuid"), col("Created", "created_at")] });

// ---- VM actions -----------------------------------------------------------------------------

function vmActions(vm, reload) {
  const act = (label, action, question) => h("button", { type: "button", class: "small",
    "aria-label": `${label} ${vm.name}`,
    onclick: async () => {
      if (!(await SK.confirm(`${label} VM ${vm.name}?`, question, label))) return;
      await vmCall(`/v1/vm_instances/${vm.uuid}/${action}`, {}, `${vm.name}: ${action} done`, reload);
    } }, label);
  const running = vm.state === "Running";
  return h("span", { class: "actions" },
    running ? null : act("Start", "start", "It boots on its host."),
    running ? act("Stop", "stop", "It is shut down; whatever runs in it stops.") : null,
    running ? act("Reboot", "reboot", "It restarts: its boot id changes.") : null,
    vm.host_uuid ? h("button", { type: "button", class: "small", "aria-label": `Migrate ${vm.name}`,
      onclick: () => migrate(vm, reload) }, "Migrate") : null);
}

// An error replaces the last one shown above the list (they do not pile up).
function showError(err) {
  const view = document.getElementById("view");
  for (const old of view.querySelectorAll(":scope > .error")) old.remove();
  view.prepend(SK.errorBox(err));
}

async function vmCall(path, json, done, reload) {
  try {
    await SK.api(path, { method: "POST", json });
    SK.notice(done, "ok");
  } catch (err) {
    SK.notice("");
    showError(err);
  }
  await reload();
}

async function migrate(vm, reload) {
  let hosts;
  try {
    hosts = (await SK.api(`/v1/hosts?cluster_uuid=${encodeURIComponent(vm.cluster_uuid)}&status=Connected&limit=500`))
      .items.filter((x) => x.uuid !== vm.host_uuid);
  } catch (err) {
    showError(err);
    return;
  }
  if (!hosts.length) {
    SK.notice(`No other connected host in the cluster of ${vm.name}: it cannot migrate now.`, "warn");
    return;
  }
  const select = h("select", { id: "migrate-to" }, hosts.map((x) => h("option", { value: x.uuid }, `${x.name} (${x.management_ip})`)));
  const ok = await SK.confirm(`Migrate VM ${vm.name}?`, [
    h("p", {}, "To another connected host of its cluster:"), h("label", { for: "migrate-to" }, "Target host "), select], "Migrate");
  if (ok) await vmCall(`/v1/vm_instances/${vm.uuid}/migrate`, { host_uuid: select.value }, `${vm.name} migrated`, reload);
}

// ---- Settings -------------------------------------------------------------------------------

const BOOLEAN = new Set(["true", "false"]);

SK.pages.settings = async (view) => {
  view.replaceChildren(h("h1", {}, "Settings"), h("h2", {}, "Platform setting › Global setting"),
    h("div", { id: "vm-ha" }), h("div", { id: "settings" }, "Loading…"));
  const load = async () => {
    try {
      const [list, ha] = await Promise.all([SK.api("/v1/global-settings"), SK.api("/v1/ha")]);
      document.getElementById("vm-ha").replaceChildren(vmHaSwitch(ha, load));
      document.getElementById("settings").replaceChildren(SK.table("Global settings", [
        { label: "Setting", value: (s) => h("code", {}, `${s.category}.${s.name}`) },
        { label: "Value", value: (s) => editor(s, load) },
        { label: "Default", value: (s) => s.default_value ?? "" },
        { label: "Meaning", value: (s) => s.description || "" },
      ], list.settings));
    } catch (err) {
      document.getElementById("settings").replaceChildren(SK.errorBox(err));
    }
  };
  await load();
};

function vmHaSwitch(ha, reload) {
  const box = h("input", { type: "checkbox", id: "ha-enable", role: "switch", checked: ha.enabled });
  box.addEventListener("change", () => save("ha", "enable", box.checked, reload));
  return h("fieldset", { class: "switch" }, h("legend", {}, "VM high availability"),
    box, h("label", { for: "ha-enable" }, "Restart NeverStop VMs elsewhere when their host is lost (ha.enable)"),
    ha.held_off_by_upgrade ? h("p", { class: "warn" }, ha.message) : null);
}

function editor(s, reload) {
  if (s.category === "upgrade") return h("span", { class: "muted" }, s.value || "(none)");  // the upgrade's record
  const id = `set-${s.category}-${s.name}`.replace(/[^A-Za-z0-9_-]/g, "-");
  if (BOOLEAN.has(String(s.value))) {
    const box = h("input", { type: "checkbox", id, checked: s.value === "true",
      "aria-label": `${s.category}.${s.name}` });
    box.addEventListener("change", () => save(s.category, s.name, box.checked, reload));
    return box;
  }
  const input = h("input", { type: "text", id, value: s.value ?? "", size: 12, "aria-label": `${s.category}.${s.name}` });
  return h("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); save(s.category, s.name, input.value, reload); } },
    input, h("button", { type: "submit", class: "small" }, "Save"));
}

async function save(category, name, value, reload) {
  try {
    const out = await SK.api(`/v1/global-settings/${category}/${name}`, { method: "PUT", json: { value } });
    SK.notice(`${category}.${name} is now ${out.value} (it was ${out.previous ?? "unset"})`, "ok");
  } catch (err) {
    SK.notice("");
    document.getElementById("settings").prepend(SK.errorBox(err));
    return;
  }
  await reload();
}
