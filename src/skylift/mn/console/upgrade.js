// skylift console: the upgrade page (phases and steps live, the maintenance window as it
// happens, findings, proof, report), and the watch that moves an open page onto a new
// release's assets by itself — no Ctrl+F5.
"use strict";

// ---- The upgrade page -----------------------------------------------------------------------

const STEP_MARK = { done: "✓", skipped: "↷", running: "…", failed: "✗", planned: "·",
  undone: "↺", undoing: "↺", "undo failed": "✗" };

SK.pages.upgrade = async (view, page) => {
  view.replaceChildren(h("h1", {}, "Upgrade"), h("section", { class: "card", id: "upgrade-agents" }),
    h("div", { id: "upgrade" }, "Loading…"));
  // the agents' rollout as bars, while the MN can count them (not in its maintenance window)
  page.every(2000, async () => {
    const box = document.getElementById("upgrade-agents");
    try {
      const data = await SK.api("/v1/overview");
      box.replaceChildren(SK.bars("Host and vRouter agents by version", data.agents_by_version));
    } catch (err) {
      box.replaceChildren(h("p", { class: "muted" }, "Agents by version: counted again when the MN serves (",
        err.what, ")"));
    }
  });
  let last = null;
  page.every(1000, async () => {
    const box = document.getElementById("upgrade");
    let data;
    try {
      data = await SK.api("/v1/upgrade");
    } catch (err) {
      // the MN is being replaced: keep what was seen, say why it is not fresh
      box.replaceChildren(SK.errorBox(err), ...(last ? renderUpgrade(last, true) : []));
      return;
    }
    last = data;
    box.replaceChildren(...renderUpgrade(data, false));
  });
};

function renderUpgrade(data, stale) {
  const run = data.run;
  if (!run) {
    return [h("p", { id: "upgrade-none" }, "No upgrade has run on this management node's machine. ",
      "Start one with ", h("code", {}, "skylift upgrade run"), " on the MN machine; this page follows it live.")];
  }
  // a run that stopped is measured to its last record, not to the clock
  const now = stale || !["running", "rolling_back"].includes(run.status) ? run.updated : data.now;
  const steps = data.phases.flatMap((p) => p.steps);
  const done = steps.filter((s) => s.status === "done" || s.status === "skipped").length;
  const progress = h("progress", { id: "upgrade-progress", max: steps.length || 1, value: done,
    "aria-label": "Steps done" });
  return [
    h("section", { class: "card wide", id: "upgrade-run" },
      h("h2", {}, `Upgrade to ${run.target || "?"}: `, h("span", { id: "upgrade-status", class: `run-${run.status}` }, run.status.replace("_", " "))),
      h("p", {}, `Run ${run.run_id}, started ${SK.when(run.started)}, ${SK.seconds(now - run.started)}`,
        now === data.now ? " so far" : "",
        run.resumes ? `, resumed ${run.resumes}×` : "", stale ? " (last seen)" : ""),
      h("p", {}, progress, ` ${done} of ${steps.length} steps done`),
      run.in_flight ? h("p", {}, "Now: ", h("code", { id: "upgrade-now" }, run.in_flight)) : null,
      windowLine(data.window, now),
      Object.entries(run.failed || {}).map(([key, error]) => h("div", { class: "error", role: "alert" },
        h("p", { class: "what" }, `Failed at ${key}`), h("p", { class: "why" }, error),
        h("p", { class: "next" }, h("b", {}, "Next: "), "fix what it says, then `skylift upgrade resume` (or `rollback`) on the MN machine")))),
    proofCard(data.state.proof),
    findingsCard(data.state.checks),
    h("section", { class: "card wide", id: "upgrade-steps" }, h("h2", {}, "Phases and steps"),
      data.phases.map((phase) => h("details", { open: phase.steps.some((s) => s.status !== "done" && s.status !== "skipped") || undefined },
        h("summary", {}, `${phase.name} `, h("span", { class: "muted" }, phaseText(phase, now))),
        h("ol", { class: "steps" }, phase.steps.map((s) => h("li", { class: `step st-${s.status.replace(" ", "-")}`, "data-key": s.key },
          h("span", { class: "mark", "aria-hidden": "true" }, STEP_MARK[s.status] || "·"),
          h("span", { class: "key" }, s.key), " ",
          h("span", { class: "desc" }, s.description), " ",
          h("span", { class: "muted" }, s.status === "running" ? `running ${SK.seconds(now - s.started)}` :
            s.status === "planned" ? "" : `${s.status}${s.seconds != null ? " in " + SK.seconds(s.seconds) : ""}`),
          s.point_of_no_return ? h("span", { class: "tag" }, "point of no return") : null,
          s.note ? h("div", { class: "note" }, s.note) : null,
          s.error ? h("div", { class: "note error-text" }, s.error) : null)))))),
    data.report ? reportCard(data.report) : null,
  ].filter(Boolean);
}

function phaseText(phase, now) {
  const ended = phase.steps.filter((s) => s.seconds != null).reduce((t, s) => t + s.seconds, 0);
  const running = phase.steps.find((s) => s.status === "running");
  const done = phase.steps.filter((s) => s.status === "done" || s.status === "skipped").length;
  return `${done}/${phase.steps.length}` + (ended || running ? `, ${SK.seconds(ended + (running ? now - running.started : 0))}` : "");
}

// The API's maintenance window: from the drain of the old MN to the new MN serving.
function windowLine(window, now) {
  if (!window || !window.opened) return h("p", { id: "upgrade-window" }, "API window: not opened yet (the API serves normally)");
  if (!window.closed) {
    return h("p", { id: "upgrade-window", class: "warn" },
      `API in maintenance for ${SK.seconds(now - window.opened)} so far (since ${SK.when(window.opened)}): calls get 503 "upgrade in progress", VMs keep running`);
  }
  // to the hundredth, as the report measures it
  return h("p", { id: "upgrade-window" }, `API was in maintenance for ${(window.closed - window.opened).toFixed(2)} s (${SK.when(window.opened)}–${SK.when(window.closed)})`);
}

function proofCard(proof) {
  if (!proof) return null;
  const restarted = (proof.vms_restarted || []).length;
  const changed = proof.inventory_changed || [];
  const behind = (proof.agents_behind || []).length + (proof.agents_unreachable || []).length;
  const rows = [
    ["Verdict", proof.verdict || (proof.ok ? "ok" : "not proven")],
    ["Inventory", changed.length ? `changed: ${changed.join(", ")}` : "every recorded resource still there"],
    ["VMs checked (boot ids)", `${SK.fmt(proof.vms_checked)}, restarted ${restarted}, missing ${(proof.vms_missing || []).length}`],
    ["Agents on the new version", `${SK.fmt((proof.agents_checked || 0) - behind)} of ${SK.fmt(proof.agents_checked || 0)}`],
    ["Console assets renamed (no Ctrl+F5)", String(proof.console_assets_renamed ?? "")],
  ];
  return h("section", { class: `card wide proof ${proof.ok ? "ok" : "bad"}`, id: "upgrade-proof" },
    SK.table("Proof", [{ label: "Claim", value: (r) => r[0] }, { label: "Result", value: (r) => r[1] }], rows));
}

function findingsCard(checks) {
  if (!checks || !checks.findings || !checks.findings.length) return null;
  return h("section", { class: "card wide", id: "upgrade-findings" }, h("h2", {}, "Preflight findings"),
    h("ul", { class: "findings" }, checks.findings.map((f) => h("li", { class: `sev-${f.severity}` },
      h("span", { class: "sev" }, f.severity), " ", h("b", {}, f.title), ": ", f.summary,
      f.remediation ? h("div", { class: "remedy" }, h("b", {}, "Remedy: "), f.remediation) : null))));
}

function reportCard(report) {
  return h("section", { class: "card wide", id: "upgrade-report" }, h("h2", {}, "Report"),
    report.sections.filter((s) => s.table && s.table.length).map((s) => {
      const columns = Object.keys(s.table[0]).map((k) => ({ label: k, value: (row) => String(row[k] ?? "") }));
      return SK.table(s.title, columns, s.table);
    }));
}

// ---- No Ctrl+F5: follow the MN onto a new release's assets ----------------------------------

const UPDATED_KEY = "skylift-console-updated";

// The asset names this page was loaded with, as the MN listed them.
function loadedAssets() {
  const out = {};
  for (const el of document.querySelectorAll("script[src^='/static/'], link[href^='/static/']")) {
    const url = el.getAttribute("src") || el.getAttribute("href");
    const name = url.replace(/^\/static\//, "").replace(/\.[0-9a-f]{12}\./, ".");
    out[name] = url;
  }
  return out;
}

// Watch /v1/console/assets (open, served in maintenance); when the MN serves other names,
// fetch the new page and its assets first (so the switch never lands on a dead MN), then
// load them, and tell the person what changed after the switch.
SK.watchRelease = (release, onChange) => {
  const mine = loadedAssets();
  let switching = false;
  const check = async () => {
    if (switching) return;
    let now;
    try {
      now = await SK.open("/v1/console/assets");
    } catch (err) {
      return;  // the MN is being replaced: ask again on the next tick
    }
    const changed = Object.keys(now.assets).filter((name) => mine[name] !== now.assets[name]);
    if (!changed.length) return;
    switching = true;
    try {
      const page = await fetch("/", { cache: "no-store" });
      const html = page.ok ? await page.text() : "";
      const ready = Object.values(now.assets).every((url) => html.includes(url));
      if (!ready) throw new Error("the page does not name the new assets yet");
      await Promise.all(Object.values(now.assets).map((url) => fetch(url).then((r) => {
        if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
      })));
      const since = (r) => newer(r.release, release());
      sessionStorage.setItem(UPDATED_KEY, JSON.stringify({ from: release(), to: now.release,
        changed, notes: (now.changes || []).filter(since), at: Date.now() }));
      if (onChange) onChange(now);
      location.reload();
    } catch (err) {
      switching = false;  // try again on the next tick
    }
  };
  setInterval(check, 2000);
  return check;
};

// Whether dotted release a is newer than b ("4.3.12" > "3.7.1"; no b: every release is).
function newer(a, b) {
  if (!b) return true;
  const x = a.split(".").map(Number), y = b.split(".").map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if ((x[i] || 0) !== (y[i] || 0)) return (x[i] || 0) > (y[i] || 0);
  }
  return false;
}

// What the page says once after it moved itself onto new assets (null if it did not).
SK.takeUpdateNote = () => {
  const raw = sessionStorage.getItem(UPDATED_KEY);
  if (!raw) return null;
  sessionStorage.removeItem(UPDATED_KEY);
  try {
    return JSON.parse(raw);
  } catch (err) {
    return null;
  }
};
