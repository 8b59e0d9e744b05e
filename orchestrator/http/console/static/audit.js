// #/audit: who did what, when, why, from which surface; and the table the saga page reuses.
import * as api from "./api.js";
import { errorBox, fmtTime, h, workflowLink } from "./dom.js";

export function auditTable(entries, { workflowColumn = true } = {}) {
  if (!entries.length) return h("div", { class: "empty", text: "No audit entries." });
  const headers = ["when (UTC)", "who", "role", "action", workflowColumn ? "workflow" : null, "reason", "surface", "detail"].filter(Boolean);
  return h("table", { class: "grid audit", "data-testid": "audit-table" },
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { text: x })))),
    h("tbody", {}, entries.map((e) => h("tr", { "data-audit-id": e.id, "data-action": e.action },
      h("td", { class: "mono nowrap", text: fmtTime(e.at) }),
      h("td", { class: "actor", text: e.actor || "—" }),
      h("td", { text: e.role || "" }),
      h("td", {}, h("span", { class: "action-name", text: e.action })),
      workflowColumn ? h("td", {}, e.workflow_id ? workflowLink(e.workflow_id) : "—") : null,
      h("td", { class: "reason", text: e.reason || "" }),
      h("td", { text: e.surface || "" }),
      h("td", { class: "detail mono", text: e.detail && Object.keys(e.detail).length ? JSON.stringify(e.detail) : "" }),
    ))));
}

export async function mount(root, { query }) {
  const filter = { workflow_id: query.get("workflow_id") || "", action: query.get("action") || "" };
  const holder = h("div");
  const pages = [];
  let cursor = null;
  let next = null;
  const older = h("button", { type: "button", id: "audit-older", text: "Older ›", disabled: true });
  const newest = h("button", { type: "button", id: "audit-newest", text: "« Newest", disabled: true });
  const workflow = h("input", { name: "workflow_id", placeholder: "workflow id", value: filter.workflow_id });
  const action = h("input", { name: "action", placeholder: "action (e.g. skip_compensation)", value: filter.action });
  const form = h("form", { class: "filters" }, workflow, action, h("button", { type: "submit", class: "primary", text: "Apply" }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const params = new URLSearchParams();
    if (workflow.value.trim()) params.set("workflow_id", workflow.value.trim());
    if (action.value.trim()) params.set("action", action.value.trim());
    location.hash = `#/audit${params.toString() ? `?${params}` : ""}`;
  });
  root.append(h("div", { class: "page-head" }, h("h1", { text: "Audit log" })), form, holder, h("div", { class: "pager" }, newest, older));

  async function load() {
    try {
      const page = await api.get("/admin/audit", { ...filter, limit: 50, cursor });
      next = page.next_cursor || null;
      older.disabled = !next;
      newest.disabled = pages.length === 0;
      holder.replaceChildren(auditTable(page.items));
    } catch (error) {
      holder.replaceChildren(errorBox(error));
    }
  }
  older.addEventListener("click", () => { pages.push(cursor); cursor = next; load(); });
  newest.addEventListener("click", () => { pages.length = 0; cursor = null; load(); });
  await load();
  return { refresh: load };
}
