// #/inbox: what needs a person: failed rollbacks first, then failed workflows, with actions.
import { actionButtons } from "./actions.js";
import * as api from "./api.js";
import { errorBox, fmtTime, h, section, statusBadge, workflowLink } from "./dom.js";

const LIMIT = 50;
const GROUPS = [
  ["compensation-failed", "Rollback failed (COMPENSATION_FAILED)", ["COMPENSATION_FAILED"], ["retry-compensation", "skip-compensation", "fork"]],
  ["failed", "Failed (ERROR, MAX_RECOVERY_ATTEMPTS_EXCEEDED)", ["ERROR", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"], ["resume", "fork"]],
];

function row(w, only, ctx, reload) {
  return h("tr", { "data-workflow-id": w.workflow_id, "data-status": w.status },
    h("td", {}, statusBadge(w.status)),
    h("td", {}, workflowLink(w.workflow_id)),
    h("td", { text: w.name }),
    h("td", { class: "mono nowrap", text: fmtTime(w.updated_at) }),
    h("td", { class: "error-cell", title: w.error || "", text: w.error ? `${w.error_type || "error"}: ${w.error}` : "" }),
    h("td", { class: "nowrap" }, actionButtons(w, () => api.get(`${api.wf(w.workflow_id)}/steps`), ctx, reload, { compact: true, only }) || ""),
  );
}

export async function mount(root, _params, ctx) {
  const holders = GROUPS.map(([id]) => h("div", { id: `inbox-${id}` }));
  const titles = GROUPS.map(([, title]) => h("span", { text: title }));
  root.append(
    h("div", { class: "page-head" }, h("h1", { text: "Inbox" }), h("p", { class: "muted", text: "Sagas that need a person. Every action asks for confirmation and is recorded in the audit log." })),
    ...GROUPS.map((group, i) => section(titles[i], { "data-group": group[0] }, holders[i])),
  );
  async function load() {
    const tally = await api.get("/admin/workflow-counts").catch(() => null);
    await Promise.all(GROUPS.map(async ([, title, statuses, only], i) => {
      try {
        const page = await api.get("/workflows", { status: statuses, limit: LIMIT });
        const total = tally ? statuses.reduce((n, s) => n + (tally.counts[s] || 0), 0) : null;
        const more = page.next || page.next_cursor ? "+" : "";
        titles[i].textContent = `${title} · ${total ?? `${page.items.length}${more}`}`;
        if (total !== null && total > page.items.length) titles[i].textContent += ` (the ${page.items.length} newest shown; see Bulk to act on all)`;
        holders[i].replaceChildren(page.items.length
          ? h("table", { class: "grid" },
              h("thead", {}, h("tr", {}, ["status", "workflow id", "name", "updated (UTC)", "error", ""].map((x) => h("th", { text: x })))),
              h("tbody", {}, page.items.map((w) => row(w, only, ctx, load))))
          : h("div", { class: "empty", text: "Nothing here." }));
      } catch (error) {
        holders[i].replaceChildren(errorBox(error));
      }
    }));
  }
  await load();
  return { refresh: load };
}
