// #/bulk: one action on every workflow a filter matches: a dry run counts them first, then a
// confirmed run reports what was done and what failed.
import { confirmAndRun } from "./actions.js";
import * as api from "./api.js";
import { errorBox, h, workflowLink } from "./dom.js";
import { filterForm, fromQuery, toBody } from "./filters.js";

const ACTIONS = [
  ["cancel", "Cancel"],
  ["resume", "Resume"],
  ["retry-compensation", "Retry compensation"],
];

export async function mount(root, { query }, ctx) {
  let filter = fromQuery(query);
  const action = h("select", { id: "bulk-action", "data-testid": "bulk-action" }, ACTIONS.map(([v, l]) => h("option", { value: v, text: l })));
  const compensate = h("input", { type: "checkbox", id: "bulk-compensate", checked: true });
  const compensateLabel = h("label", { class: "check" }, compensate, " roll back (run compensations)");
  const reason = h("input", { id: "bulk-reason", placeholder: "reason (recorded in the audit log)", size: 40 });
  const dryRun = h("button", { type: "button", id: "bulk-dry-run", class: "primary", text: "Dry run", disabled: !ctx.canAct });
  const result = h("div", { id: "bulk-result", "data-testid": "bulk-result" });
  const form = filterForm(filter, (next) => { filter = next; result.replaceChildren(); }, { id: "bulk-filters" });
  const syncCompensate = () => { compensateLabel.hidden = action.value !== "cancel"; result.replaceChildren(); };
  action.addEventListener("change", syncCompensate);
  root.append(
    h("div", { class: "page-head" }, h("h1", { text: "Bulk actions" }), h("p", { class: "muted", text: "Choose the workflows by filter, see how many match (nothing is changed by a dry run), then run the action on them." })),
    h("section", { class: "panel" }, h("h2", { text: "1. Which workflows" }), form),
    h("section", { class: "panel" }, h("h2", { text: "2. What to do" }),
      h("div", { class: "filters" }, action, compensateLabel, reason, dryRun),
      ctx.canAct ? null : h("p", { class: "muted", id: "bulk-read-only", text: "Your key is read-only: you can look, not act." })),
    result,
  );

  const body = (dry) => ({
    filter: toBody(form.read()),
    dry_run: dry,
    ...(action.value === "cancel" ? { compensate: compensate.checked } : {}),
    reason: reason.value.trim() || null,
  });

  function showDone(outcome) {
    result.replaceChildren(h("section", { class: "panel", id: "bulk-outcome" },
      h("h2", { text: "Done" }),
      h("p", {}, h("b", { id: "bulk-done", text: outcome.done.length }), " done, ", h("b", { id: "bulk-failed", text: outcome.failed.length }), ` failed (of ${outcome.matched} matched).`),
      outcome.failed.length ? h("table", { class: "grid" }, h("tbody", {}, outcome.failed.map((f) =>
        h("tr", {}, h("td", {}, workflowLink(f.workflow_id)), h("td", { text: f.error }), h("td", { text: f.message }))))) : null,
    ));
  }

  dryRun.addEventListener("click", async () => {
    const name = action.value;
    const label = ACTIONS.find(([v]) => v === name)[1];
    let plan;
    try {
      plan = await api.post(`/admin/bulk/${name}`, body(true));
    } catch (error) {
      result.replaceChildren(errorBox(error));
      return;
    }
    const run = h("button", { type: "button", id: "bulk-run", class: "danger", text: `${label} ${plan.matched} workflows…`, disabled: plan.matched === 0 });
    result.replaceChildren(h("section", { class: "panel", id: "bulk-plan" },
      h("h2", { text: "Dry run" }),
      h("p", {}, h("b", { id: "bulk-matched", text: plan.matched }), ` workflows match; ${label.toLowerCase()} would apply to each. Nothing was changed.`),
      plan.workflow_ids.length ? h("div", { class: "id-list" }, plan.workflow_ids.map((id) => workflowLink(id))) : null,
      plan.matched > plan.workflow_ids.length ? h("p", { class: "muted", text: `… and ${plan.matched - plan.workflow_ids.length} more.` }) : null,
      run,
    ));
    run.addEventListener("click", async () => {
      const outcome = await confirmAndRun(
        { title: `${label} ${plan.matched} workflows?`, lines: ["This acts on every workflow the filter matches now (it may differ slightly from the dry run's count)."], ok: `${label} them`, danger: name === "cancel" },
        () => api.post(`/admin/bulk/${name}`, body(false)),
      );
      if (outcome) {
        showDone(outcome);
        ctx.toast(`${label}: ${outcome.done.length} done, ${outcome.failed.length} failed`);
      }
    });
  });
  syncCompensate();
  return {};
}
