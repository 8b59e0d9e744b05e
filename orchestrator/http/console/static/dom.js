// DOM helpers. Every value reaches the page through textContent or attributes, never parsed
// as markup: workflow inputs and outputs are user data.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = String(value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style") Object.assign(el.style, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export const SVG_NS = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (key === "text") el.textContent = String(value);
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

// One date format everywhere: UTC, ISO-like, to the millisecond ("2026-12-06 21:31:38.123Z").
export function fmtTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return date.toISOString().replace("T", " ");
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} m ${Math.round((ms % 60_000) / 1000)} s`;
  return `${Math.floor(ms / 3_600_000)} h ${Math.round((ms % 3_600_000) / 60_000)} m`;
}

export function statusBadge(status, attrs = {}) {
  return h("span", { class: `badge status-${status || "UNKNOWN"}`, ...attrs, text: status || "?" });
}

// A JSON value shown as text in a <pre> (collapsed past a size, never interpreted).
export function jsonBlock(value, attrs = {}) {
  let text;
  try {
    text = value === undefined ? "—" : JSON.stringify(value, null, 2);
  } catch {
    text = String(value);
  }
  return h("pre", { class: "json", ...attrs, text });
}

export function workflowLink(id, attrs = {}) {
  return h("a", { href: `#/workflows/${encodeURIComponent(id)}`, class: "mono", ...attrs, text: id });
}

export function empty(text) {
  return h("div", { class: "empty", text });
}

export function section(title, attrs = {}, ...children) {
  return h("section", { class: "panel", ...attrs }, h("h2", {}, title), ...children);
}

export function table(headers, rows, attrs = {}) {
  return h(
    "table",
    { class: "grid", ...attrs },
    h("thead", {}, h("tr", {}, headers.map((header) => h("th", { text: header })))),
    h("tbody", {}, rows),
  );
}

export function errorBox(error, attrs = {}) {
  return h("div", { class: "error-box", role: "alert", ...attrs, text: errorText(error) });
}

export function errorText(error) {
  if (!error) return "";
  if (error.status) {
    const fields = Array.isArray(error.detail) ? error.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`) : [];
    return [`${error.status} ${error.code || "error"}: ${error.message}`, ...fields].join("\n");
  }
  return String(error.message || error);
}

export const STATUSES = [
  "ENQUEUED",
  "PENDING",
  "SUCCESS",
  "ERROR",
  "CANCELLED",
  "COMPENSATING",
  "COMPENSATED",
  "COMPENSATION_FAILED",
  "MAX_RECOVERY_ATTEMPTS_EXCEEDED",
];
export const FINAL = new Set([
  "SUCCESS",
  "ERROR",
  "CANCELLED",
  "COMPENSATED",
  "COMPENSATION_FAILED",
  "MAX_RECOVERY_ATTEMPTS_EXCEEDED",
]);
