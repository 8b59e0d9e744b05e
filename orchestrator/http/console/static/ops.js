// #/queues, #/schedules, #/workers: the fleet's state, refreshed live.
import { confirmAndRun } from "./actions.js";
import * as api from "./api.js";
import { errorBox, fmtDuration, fmtTime, h } from "./dom.js";

const dash = (v) => (v === null || v === undefined ? "—" : String(v));

function page(root, title, note, id, render) {
  const holder = h("div", { id });
  root.append(h("div", { class: "page-head" }, h("h1", { text: title }), h("p", { class: "muted", text: note })), holder);
  async function load() {
    try {
      holder.replaceChildren(await render());
    } catch (error) {
      holder.replaceChildren(errorBox(error));
    }
  }
  return load;
}

function grid(headers, rows, attrs = {}) {
  return h("table", { class: "grid", ...attrs },
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { text: x })))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: headers.length, class: "empty", text: "None." }))));
}

export async function mountQueues(root) {
  const load = page(root, "Queues", "Waiting (depth), running and the limits each queue was declared with.", "queues", async () => {
    const queues = await api.get("/admin/queues");
    return grid(["queue", "depth", "in flight", "started last min", "concurrency", "per worker", "rate limit"], queues.map((q) =>
      h("tr", { "data-queue": q.queue_name },
        h("td", {}, h("a", { href: `#/workflows?queue=${encodeURIComponent(q.queue_name)}`, text: q.queue_name })),
        h("td", { class: "num", "data-field": "depth", text: q.depth }),
        h("td", { class: "num", "data-field": "running", text: q.running }),
        h("td", { class: "num", text: q.started_last_minute }),
        h("td", { class: "num", text: dash(q.concurrency) }),
        h("td", { class: "num", text: dash(q.worker_concurrency) }),
        h("td", { text: q.limit_per_period ? `${q.limit_per_period} / ${q.period_seconds} s` : "—" }),
      )), { "data-testid": "queues-table" });
  });
  await load();
  return { refresh: load };
}

export async function mountSchedules(root, _params, ctx) {
  let load;
  const act = (s, verb, label) => h("button", {
    type: "button", "data-action": verb, text: label,
    onclick: async () => {
      const done = await confirmAndRun(
        { title: `${label} schedule ${s.name}?`, lines: verb === "trigger" ? [`Starts ${s.workflow_name} now, outside its cron.`] : [], ok: label },
        () => api.post(`/admin/schedules/${encodeURIComponent(s.name)}/${verb}`, {}),
      );
      if (done) {
        ctx.toast(`${label}: ${s.name}${done.workflow_id ? ` → ${done.workflow_id}` : ""}`);
        load();
      }
    },
  });
  load = page(root, "Schedules", "Cron schedules (seconds first); the next ticks are in UTC.", "schedules", async () => {
    const schedules = await api.get("/admin/schedules");
    return grid(["name", "workflow", "cron", "state", "last tick", "next ticks", ""], schedules.map((s) =>
      h("tr", { "data-schedule": s.name },
        h("td", { class: "mono", text: s.name }),
        h("td", {}, h("a", { href: `#/workflows?name=${encodeURIComponent(s.workflow_name)}`, text: s.workflow_name })),
        h("td", { class: "mono", text: s.cron }),
        h("td", {}, h("span", { class: `badge ${s.paused ? "status-CANCELLED" : "status-SUCCESS"}`, "data-field": "state", text: s.paused ? "paused" : "active" })),
        h("td", { class: "mono nowrap", text: fmtTime(s.last_tick) }),
        h("td", { class: "mono small" }, (s.next_ticks || []).slice(0, 3).map((t) => h("div", { text: fmtTime(t) }))),
        h("td", { class: "nowrap" }, ctx.canAct ? [s.paused ? act(s, "resume", "Resume") : act(s, "pause", "Pause"), act(s, "trigger", "Trigger now")] : ""),
      )), { "data-testid": "schedules-table" });
  });
  await load();
  return { refresh: load };
}

export async function mountWorkers(root) {
  const load = page(root, "Workers", "Worker processes and their leases; lease age = now − last heartbeat.", "workers", async () => {
    const workers = await api.get("/admin/workers");
    const now = Date.now();
    return grid(["executor", "state", "version", "host", "pid", "started (UTC)", "lease age", "lease expires (UTC)"], workers.map((w) =>
      h("tr", { "data-executor": w.executor_id },
        h("td", { class: "mono", text: w.executor_id }),
        h("td", {}, h("span", { class: `badge ${w.alive ? "status-SUCCESS" : "status-CANCELLED"}`, text: w.alive ? "live" : "gone" })),
        h("td", { text: dash(w.app_version) }),
        h("td", { text: dash(w.host) }),
        h("td", { class: "num", text: dash(w.pid) }),
        h("td", { class: "mono nowrap", text: fmtTime(w.started_at) }),
        h("td", { class: "num", "data-field": "lease-age", text: fmtDuration(now - new Date(w.heartbeat_at).getTime()) }),
        h("td", { class: "mono nowrap", text: fmtTime(w.lease_expires_at) }),
      )), { "data-testid": "workers-table" });
  });
  await load();
  return { refresh: load };
}
