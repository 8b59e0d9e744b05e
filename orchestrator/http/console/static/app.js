// The console's shell: who is logged in, the hash router, and the 2 s live refresh.
import * as api from "./api.js";
import { errorBox, h } from "./dom.js";
import * as audit from "./audit.js";
import * as bulk from "./bulk.js";
import * as inbox from "./inbox.js";
import * as ops from "./ops.js";
import * as saga from "./saga.js";
import * as workflows from "./workflows.js";

const REFRESH_MS = 2000;

const ROUTES = [
  [/^\/workflows\/(.+)$/, "workflows", (m) => saga.mount, (m) => ({ id: decodeURIComponent(m[1]) })],
  [/^\/workflows\/?$/, "workflows", () => workflows.mount],
  [/^\/inbox$/, "inbox", () => inbox.mount],
  [/^\/bulk$/, "bulk", () => bulk.mount],
  [/^\/queues$/, "queues", () => ops.mountQueues],
  [/^\/schedules$/, "schedules", () => ops.mountSchedules],
  [/^\/workers$/, "workers", () => ops.mountWorkers],
  [/^\/audit$/, "audit", () => audit.mount],
];

const view = document.getElementById("view");
const live = document.getElementById("live");
let current = null; // { refresh, dispose } of the page on screen
let generation = 0;
let refreshing = false;

function toast(text, kind = "ok") {
  const box = document.getElementById("toast");
  box.textContent = text;
  box.className = `toast-${kind}`;
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (box.hidden = true), 5000);
}

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/workflows";
  const [path, search = ""] = raw.split("?");
  return { path, params: new URLSearchParams(search) };
}

async function route(ctx) {
  const { path, params } = parseHash();
  const mine = ++generation;
  if (current && current.dispose) current.dispose();
  current = null;
  for (const [pattern, page, pick, extra] of ROUTES) {
    const match = path.match(pattern);
    if (!match) continue;
    for (const link of document.querySelectorAll("#nav a")) {
      link.classList.toggle("active", link.dataset.page === page);
    }
    const root = h("div", { class: `page page-${page}` });
    view.replaceChildren(root);
    try {
      const mounted = await pick(match)(root, { ...(extra ? extra(match) : {}), query: params }, ctx);
      if (mine === generation) current = mounted || {};
      else if (mounted && mounted.dispose) mounted.dispose();
    } catch (error) {
      root.replaceChildren(errorBox(error));
    }
    return;
  }
  location.hash = "#/workflows";
}

async function tick() {
  if (!live.checked || document.hidden || refreshing || !current || !current.refresh) return;
  refreshing = true;
  try {
    await current.refresh();
  } catch (error) {
    if (error.status !== 401) console.warn("refresh failed", error);
  } finally {
    refreshing = false;
  }
}

async function inboxCount() {
  try {
    const { counts } = await api.get("/admin/workflow-counts");
    const n = (counts.COMPENSATION_FAILED || 0) + (counts.ERROR || 0) + (counts.MAX_RECOVERY_ATTEMPTS_EXCEEDED || 0);
    const badge = document.getElementById("inbox-count");
    badge.textContent = String(n);
    badge.hidden = n === 0;
  } catch {
    /* the counts endpoint is optional for the shell */
  }
}

async function start() {
  let me;
  try {
    me = await api.me();
  } catch (error) {
    view.replaceChildren(errorBox(error));
    return;
  }
  const ctx = {
    me,
    canAct: me.role === "operator",
    toast,
    refreshNow: () => tick(),
  };
  const who = document.getElementById("me");
  who.textContent = `${me.name || "anonymous"} · ${me.role === "operator" ? "operator" : "read-only"}`;
  who.dataset.role = me.role;
  document.body.dataset.role = me.role;
  const logout = document.getElementById("logout");
  logout.hidden = me.auth !== "session";
  logout.addEventListener("click", () => api.logout());
  window.addEventListener("hashchange", () => route(ctx));
  await route(ctx);
  inboxCount();
  setInterval(tick, REFRESH_MS);
  setInterval(() => live.checked && !document.hidden && inboxCount(), REFRESH_MS * 5);
}

start();
