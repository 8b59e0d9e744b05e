// #/workflows: the filtered list, counts per status, keyset pages ("Older"), live refresh.
import * as api from "./api.js";
import { errorBox, fmtDuration, fmtTime, h, statusBadge, STATUSES, table, workflowLink } from "./dom.js";
import { filterForm, fromQuery, toQuery } from "./filters.js";

const PAGE_SIZE = 50;

export function workflowRow(w) {
  const end = w.finished_at ? new Date(w.finished_at) : null;
  const began = w.started_at || w.created_at;
  const took = end && began ? end - new Date(began) : null;
  return h(
    "tr",
    { "data-workflow-id": w.workflow_id, "data-status": w.status },
    h("td", {}, statusBadge(w.status)),
    h("td", {}, workflowLink(w.workflow_id)),
    h("td", { text: w.name }),
    h("td", { text: w.queue_name || "" }),
    h("td", { text: w.app_version || "" }),
    h("td", { class: "mono nowrap", text: fmtTime(w.created_at) }),
    h("td", { class: "nowrap", text: took === null ? "" : fmtDuration(took) }),
    h("td", { class: "error-cell", title: w.error || "", text: w.error ? `${w.error_type || "error"}: ${w.error}` : "" }),
  );
}

export const HEADERS = ["status", "workflow id", "name", "queue", "version", "created (UTC)", "took", "error"];

// Chips with the count of each status under the other filters; a click filters by it.
function countChips(counts, total, active, onPick) {
  return h(
    "div",
    { class: "chips", id: "counts", "data-testid": "counts" },
    h("button", { type: "button", class: `chip ${active ? "" : "active"}`, "data-status": "", onclick: () => onPick(null) },
      "all ", h("b", { text: total })),
    STATUSES.filter((s) => counts[s]).map((s) =>
      h("button", { type: "button", class: `chip status-${s} ${active === s ? "active" : ""}`, "data-status": s, onclick: () => onPick(s) },
        `${s} `, h("b", { "data-count": s, text: counts[s] })),
    ),
  );
}

export async function mount(root, { query }, ctx) {
  const filter = fromQuery(query);
  const go = (next) => {
    location.hash = `#/workflows${toQuery(next) ? `?${toQuery(next)}` : ""}`;
  };
  const counts = h("div", { class: "chips-holder" });
  const body = h("tbody");
  const status = h("div", { class: "pager-status muted" });
  const pages = []; // cursors (or offsets) of the pages before this one
  let page = { cursor: null, offset: 0 };
  let next = null;
  const older = h("button", { type: "button", id: "older", text: "Older ›", disabled: true });
  const newest = h("button", { type: "button", id: "newest", text: "« Newest", disabled: true });
  const error = h("div");
  root.append(
    h("div", { class: "page-head" }, h("h1", { text: "Workflows" }), counts),
    filterForm(filter, go),
    error,
    h("table", { class: "grid", id: "workflows", "data-testid": "workflow-table" },
      h("thead", {}, h("tr", {}, HEADERS.map((x) => h("th", { text: x })))), body),
    h("div", { class: "pager" }, newest, older, status),
  );

  async function load() {
    const params = { ...filter, limit: PAGE_SIZE };
    if (page.cursor) params.cursor = page.cursor;
    else if (page.offset) params.offset = page.offset;
    const countFilter = { ...filter };
    delete countFilter.status;
    const [list, tally] = await Promise.all([
      api.get("/workflows", params),
      api.get("/admin/workflow-counts", countFilter).catch(() => null),
    ]);
    error.replaceChildren();
    body.replaceChildren(...(list.items.length ? list.items.map(workflowRow) : [
      h("tr", {}, h("td", { colspan: HEADERS.length, class: "empty", text: "No workflows match." })),
    ]));
    if (list.next_cursor !== undefined) next = list.next_cursor ? { cursor: list.next_cursor } : null;
    else next = list.next ? { offset: page.offset + PAGE_SIZE } : null; // a service without cursors
    older.disabled = !next;
    newest.disabled = pages.length === 0;
    status.textContent = `page ${pages.length + 1} · ${list.items.length} shown · updated ${fmtTime(new Date().toISOString())}`;
    if (tally) {
      counts.replaceChildren(countChips(tally.counts, tally.total, (filter.status || [])[0], (s) => go({ ...filter, status: s ? [s] : undefined })));
    }
  }

  older.addEventListener("click", async () => {
    if (!next) return;
    pages.push(page);
    page = next;
    await load().catch((e) => error.replaceChildren(errorBox(e)));
  });
  newest.addEventListener("click", async () => {
    pages.length = 0;
    page = { cursor: null, offset: 0 };
    await load().catch((e) => error.replaceChildren(errorBox(e)));
  });
  await load().catch((e) => error.replaceChildren(errorBox(e)));
  return { refresh: load };
}
