// skylift console: building blocks the pages share — elements, tables, a pager, errors as
// what / why / next, a confirmation dialog, and bars for counts.
"use strict";

// h("td", {class: "x"}, "text", child...) -> element; attributes starting with "on" are events.
SK.h = (tag, attrs = {}, ...children) => {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
};

SK.fmt = (n) => (typeof n === "number" ? n.toLocaleString("en-US") : String(n ?? ""));
SK.short = (uuid) => (uuid ? String(uuid).slice(0, 8) : "");
SK.seconds = (s) => (s === null || s === undefined ? "" : `${Number(s).toFixed(s < 10 ? 2 : 1)} s`);
SK.when = (ts) => (ts ? new Date(ts * 1000).toLocaleTimeString("en-GB") : "");

// An API error as a person reads it.
SK.errorBox = (err) => {
  const e = err instanceof SK.ApiError ? err : SK.unreachable(err);
  return SK.h("div", { class: "error", role: "alert" },
    SK.h("p", { class: "what" }, e.what),
    e.why ? SK.h("p", { class: "why" }, SK.h("b", {}, "Why: "), e.why) : null,
    e.next ? SK.h("p", { class: "next" }, SK.h("b", {}, "Next: "), e.next) : null);
};

// The line under the header: a short success or progress message.
SK.notice = (text, kind = "info") => {
  const el = document.getElementById("notice");
  el.replaceChildren(...(text ? [text] : []));
  el.className = `notice ${kind}`;
  el.hidden = !text;
};

// A table: columns [{label, value(row) -> text|Node}], rows.
SK.table = (caption, columns, rows) => SK.h("table", {},
  SK.h("caption", {}, caption),
  SK.h("thead", {}, SK.h("tr", {}, columns.map((c) => SK.h("th", { scope: "col" }, c.label)))),
  SK.h("tbody", {}, rows.map((row) => SK.h("tr", {},
    columns.map((c) => SK.h("td", c.class ? { class: c.class(row) } : {}, c.value(row)))))));

// Counts as bars (a person compares lengths faster than numbers): {label: n}.
SK.bars = (caption, counts) => {
  const entries = Object.entries(counts || {});
  const max = Math.max(1, ...entries.map(([, n]) => n));
  const total = entries.reduce((sum, [, n]) => sum + n, 0);
  return SK.h("figure", { class: "bars" },
    SK.h("figcaption", {}, `${caption} (${SK.fmt(total)})`),
    SK.h("dl", {}, entries.map(([label, n]) => {
      const bar = SK.h("span", { class: "bar" });
      bar.style.width = `${Math.max(1, Math.round((100 * n) / max))}%`;  // CSSOM: CSP allows it
      return [SK.h("dt", {}, label),
        SK.h("dd", { "aria-label": `${label}: ${n}` }, bar, SK.h("span", { class: "n" }, SK.fmt(n)))];
    })));
};

// Ask before acting: resolves true on Confirm. body: text or Node(s).
SK.confirm = (title, body, okText = "Confirm") => new Promise((resolve) => {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-body").replaceChildren(
    ...[].concat(body).map((b) => (b instanceof Node ? b : SK.h("p", {}, b))));
  document.getElementById("confirm-ok").textContent = okText;
  dialog.returnValue = "";
  dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  dialog.showModal();
});

// Paging for a list: "1–50 of 10,000" with previous / next.
SK.pager = (state, total, onPage) => {
  const first = total ? state.offset + 1 : 0;
  const last = Math.min(state.offset + state.limit, total);
  return SK.h("nav", { class: "pager", "aria-label": "Pages of the list" },
    SK.h("button", { type: "button", disabled: state.offset === 0,
      onclick: () => onPage(Math.max(0, state.offset - state.limit)) }, "‹ Previous"),
    SK.h("span", { class: "range", "aria-live": "polite" }, `${SK.fmt(first)}–${SK.fmt(last)} of ${SK.fmt(total)}`),
    SK.h("button", { type: "button", disabled: last >= total,
      onclick: () => onPage(state.offset + state.limit) }, "Next ›"));
};
