// #/workflows/<id>: one saga: summary, timeline, children tree, rollback plan, events, audit,
// and the operator's actions. Refreshed live while it runs.
import { actionButtons } from "./actions.js";
import * as api from "./api.js";
import { auditTable } from "./audit.js";
import { empty, errorBox, FINAL, fmtDuration, fmtTime, h, jsonBlock, section, statusBadge, workflowLink } from "./dom.js";
import { timeline } from "./timeline.js";

const CHILD_DEPTH = 3; // levels of the children tree fetched
const CHILD_LIMIT = 50; // children listed per workflow
const CHILD_REQUESTS = 12; // list calls per refresh for the whole tree

function traceUrl(w, me) {
  if (w.trace_url) return w.trace_url;
  if (w.trace_id && me.trace_url) return me.trace_url.replace("{trace_id}", w.trace_id);
  return null;
}

function summary(w, ctx) {
  const began = w.started_at || w.created_at;
  const end = w.finished_at ? new Date(w.finished_at) : null;
  const trace = traceUrl(w, ctx.me);
  const row = (label, value, id) => [h("dt", { text: label }), h("dd", { id }, value)];
  return h("dl", { class: "facts", id: "summary" },
    row("status", statusBadge(w.status, { "data-status": w.status }), "status"),
    row("name", w.name, "name"),
    row("version", w.app_version || "—", "app-version"),
    row("executor", w.executor_id || "—", "executor"),
    row("queue", w.queue_name || "—", "queue"),
    row("created", fmtTime(w.created_at), "created-at"),
    row("started", fmtTime(w.started_at), "started-at"),
    row("finished", fmtTime(w.finished_at), "finished-at"),
    row("duration", end && began ? fmtDuration(end - new Date(began)) : began ? `${fmtDuration(Date.now() - new Date(began))} so far` : "—", "duration"),
    row("recoveries", String(w.recovery_attempts ?? 0), "recoveries"),
    w.deadline ? row("deadline", fmtTime(w.deadline), "deadline") : null,
    Object.keys(w.attributes || {}).length
      ? row("attributes", Object.entries(w.attributes).map(([k, v]) => `${k}=${v}`).join(", "), "attributes")
      : null,
    w.parent_workflow_id ? row("parent", workflowLink(w.parent_workflow_id, { id: "parent-link" }), "parent") : null,
    row("trace", trace ? h("a", { href: trace, id: "trace-link", target: "_blank", rel: "noopener noreferrer", text: trace }) : h("span", { class: "muted", text: "no trace recorded" }), "trace"),
  );
}

function values(w) {
  return h("div", { class: "values" },
    h("div", {}, h("h3", { text: "input" }), jsonBlock(w.input, { id: "input" })),
    w.error
      ? h("div", {}, h("h3", { text: "error" }), h("pre", { class: "json error", id: "error", text: `${w.error_type || "Error"}: ${w.error}` }))
      : h("div", {}, h("h3", { text: "result" }), jsonBlock(w.output, { id: "output" })),
  );
}

// Children, grandchildren...: at most CHILD_DEPTH levels and CHILD_REQUESTS list calls per
// refresh, so a saga with thousands of descendants costs a bounded number of queries.
async function childTree(id, depth, budget = { left: CHILD_REQUESTS }) {
  if (budget.left <= 0) return [];
  budget.left -= 1;
  const page = await api.get("/workflows", { parent_workflow_id: id, limit: CHILD_LIMIT });
  const mine = page.items.filter((c) => c.parent_workflow_id === id); // (a service ignoring the filter)
  const nodes = [];
  for (const c of mine) {
    const children = depth > 1 ? await childTree(c.workflow_id, depth - 1, budget).catch(() => []) : [];
    nodes.push({ workflow: c, children });
  }
  return nodes;
}

function treeList(nodes) {
  return h("ul", { class: "tree" }, nodes.map(({ workflow: c, children }) =>
    h("li", { "data-child-id": c.workflow_id },
      statusBadge(c.status), " ", workflowLink(c.workflow_id), h("span", { class: "muted", text: ` ${c.name}` }),
      children.length ? treeList(children) : null)));
}

function rollbackPlan(plan, w) {
  if (!plan) return empty("The rollback plan is not available on this service.");
  if (FINAL.has(w.status)) {
    return h("p", { class: "muted", id: "rollback-plan-ended", text: `The saga has ended (${w.status}): no rollback would run.` });
  }
  if (plan.past_pivot) {
    return h("p", { class: "warn", id: "rollback-plan-past-pivot", text: `Past its pivot (step #${plan.pivot_step ?? "?"}): a failure now would not roll back; the saga would end ERROR with its effects in place.` });
  }
  if (!plan.compensations.length) {
    return h("p", { class: "muted", id: "rollback-plan-empty", text: "No completed step has a compensation: failing now would undo nothing." });
  }
  return h("div", {},
    h("p", { class: "muted", text: "If this saga failed now, these compensations would run, in this order, each given what the step it undoes recorded:" }),
    h("ol", { class: "plan" }, plan.compensations.map((c) =>
      h("li", { "data-order": c.order, "data-plan-step": c.step_number },
        h("div", {},
          h("b", { text: c.compensation }),
          h("span", { class: "muted", text: ` undoes step #${c.step_number} ${c.step_name}` }),
          c.child_workflow_id ? [" (child ", workflowLink(c.child_workflow_id), ")"] : null),
        jsonBlock(c.input, { class: "json small" })))),
  );
}

export async function mount(root, { id }, ctx) {
  const head = h("div", { class: "page-head" });
  const actionsHolder = h("div", { id: "saga-actions" });
  const problem = h("div");
  const facts = h("div", { class: "panel summary-panel" });
  const valuesHolder = h("div");
  const timelineHolder = h("div");
  const childrenHolder = h("div", { id: "children" });
  const planHolder = h("div", { id: "rollback-plan", "data-testid": "rollback-plan" });
  const eventsHolder = h("div", { id: "events" });
  const auditHolder = h("div", { id: "saga-audit" });
  root.append(
    head, problem,
    h("div", { class: "saga-top" }, facts, section("Rollback plan", { class: "panel plan-panel" }, planHolder)),
    valuesHolder,
    section("Timeline", {}, timelineHolder),
    h("div", { class: "two" }, section("Children", {}, childrenHolder), section("Events", {}, eventsHolder)),
    section("Audit", {}, auditHolder),
  );
  let last = null;
  let steps = [];
  const openSteps = new Set(); // steps whose recorded result is unfolded (kept across refreshes)

  async function load() {
    let w;
    try {
      w = await api.get(api.wf(id));
    } catch (error) {
      problem.replaceChildren(errorBox(error, { id: "load-error" }));
      return;
    }
    problem.replaceChildren();
    steps = await api.get(`${api.wf(id)}/steps`);
    head.replaceChildren(
      h("h1", {}, h("span", { class: "muted", text: "Saga " }), h("span", { class: "mono", id: "workflow-id", text: w.workflow_id })),
      statusBadge(w.status, { class: `badge big status-${w.status}` }),
    );
    facts.replaceChildren(summary(w, ctx));
    valuesHolder.replaceChildren(values(w));
    timelineHolder.replaceChildren(timeline(w, steps, { open: openSteps }));
    const [plan, children, events, audit] = await Promise.all([
      FINAL.has(w.status) ? Promise.resolve({ applies: false, compensations: [] }) : api.get(`${api.wf(id)}/rollback-plan`).catch(() => null),
      childTree(id, CHILD_DEPTH).catch(() => []),
      api.get(`${api.wf(id)}/events`).catch(() => null),
      api.get(`${api.wf(id)}/audit`).catch(() => null),
    ]);
    planHolder.replaceChildren(rollbackPlan(plan, w));
    childrenHolder.replaceChildren(children.length ? treeList(children) : empty("No child workflows."));
    const eventEntries = events ? Object.entries(events.events || {}) : [];
    // Keys only: the events endpoint serves programs, unredacted; the value is shown (through
    // the redaction hook) on the set_event step of the timeline.
    eventsHolder.replaceChildren(eventEntries.length
      ? h("ul", { class: "event-keys" }, eventEntries.map(([k]) => {
          const step = steps.find((x) => x.kind === "set_event" && x.name.includes(k)) || steps.find((x) => x.kind === "set_event");
          return h("li", { "data-event": k }, h("span", { class: "mono", text: k }), step ? h("span", { class: "muted", text: ` — value on step #${step.step_number}` }) : null);
        }))
      : empty("No events published."));
    const entries = Array.isArray(audit) ? audit : audit && audit.items;
    auditHolder.replaceChildren(entries ? auditTable(entries, { workflowColumn: false }) : empty("The audit log is not available on this service."));
    const key = `${w.status}|${steps.length}`;
    if (key !== last) {
      actionsHolder.replaceChildren(actionButtons(w, steps, ctx, (result, name) => {
        if (name === "fork" && result.workflow_id && result.workflow_id !== id) location.hash = `#/workflows/${encodeURIComponent(result.workflow_id)}`;
        else load();
      }) || "");
      last = key;
    }
    head.append(actionsHolder);
  }

  await load();
  return { refresh: load };
}
