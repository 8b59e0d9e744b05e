// Operator actions on one workflow: each is confirmed in a dialog, then POSTed; the API's
// error message is shown in the dialog. Readers never see the buttons (the API refuses too).
import * as api from "./api.js";
import { errorText, h } from "./dom.js";

const dialog = () => document.getElementById("dialog");

function field(spec) {
  const id = `dialog-${spec.name}`;
  let input;
  if (spec.type === "textarea") {
    input = h("textarea", { id, name: spec.name, rows: 3, required: spec.required, placeholder: spec.placeholder || "" });
    input.value = spec.value || "";
  } else if (spec.type === "select") {
    input = h("select", { id, name: spec.name, required: spec.required },
      spec.options.map(([value, label]) => h("option", { value, text: label, selected: String(value) === String(spec.value) })));
  } else if (spec.type === "checkbox") {
    input = h("input", { id, name: spec.name, type: "checkbox", checked: !!spec.value });
    return h("label", { class: "check" }, input, ` ${spec.label}`);
  } else {
    input = h("input", { id, name: spec.name, type: spec.type || "text", required: spec.required, value: spec.value ?? "", min: spec.min });
  }
  return h("label", { class: "field" }, h("span", { text: spec.label + (spec.required ? " (required)" : "") }), input);
}

// Show the dialog; resolves with run()'s result once it succeeded, or null when cancelled.
export function confirmAndRun({ title, lines = [], fields = [], ok, danger = false }, run) {
  const box = dialog();
  const problem = h("div", { class: "error-box", id: "dialog-error", role: "alert", hidden: true });
  const okButton = h("button", { type: "submit", id: "dialog-ok", class: danger ? "danger" : "primary", text: ok });
  const cancel = h("button", { type: "button", id: "dialog-cancel", text: "Cancel" });
  const form = h("form", { method: "dialog", class: "dialog-form", novalidate: true },
    h("h2", { text: title }),
    lines.map((line) => (line instanceof Node ? line : h("p", { text: line }))),
    fields.map(field),
    problem,
    h("div", { class: "buttons" }, cancel, okButton),
  );
  box.replaceChildren(form);
  return new Promise((resolve) => {
    let settled = false;
    const finish = (value) => {
      if (settled) return;
      settled = true;
      if (box.open) box.close();
      resolve(value);
    };
    cancel.addEventListener("click", () => finish(null));
    box.addEventListener("cancel", () => finish(null), { once: true });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const values = {};
      for (const spec of fields) {
        const input = form.elements[spec.name];
        values[spec.name] = spec.type === "checkbox" ? input.checked : input.value.trim();
        if (spec.required && !values[spec.name]) {
          problem.textContent = `${spec.label} is required.`;
          problem.hidden = false;
          input.focus();
          return;
        }
      }
      okButton.disabled = true;
      try {
        finish(await run(values));
      } catch (error) {
        problem.textContent = errorText(error);
        problem.hidden = false;
        okButton.disabled = false;
      }
    });
    box.showModal();
  });
}

const reasonField = (required = false) => ({
  name: "reason", label: "Reason", type: "textarea", required,
  placeholder: required ? "why (recorded in the audit log)" : "optional; recorded in the audit log",
});
const withReason = (values) => (values.reason ? { reason: values.reason } : {});

// The forward steps whose compensation failed (what skip can give up), newest first.
export function failedCompensations(steps) {
  const failed = (steps || []).filter((s) => s.kind === "compensation" && s.status === "ERROR");
  const byStep = new Map(steps.map((s) => [s.step_number, s]));
  return failed.reverse().map((c) => ({
    step: c.compensates_step,
    label: `step ${c.compensates_step} ${byStep.get(c.compensates_step)?.name || ""} — ${c.name} failed${c.error ? `: ${c.error}` : ""}`,
  }));
}

export const ACTIONS = {
  "retry-compensation": {
    label: "Retry compensation",
    when: (w) => w.status === "COMPENSATION_FAILED",
    run: (w) => confirmAndRun(
      { title: `Retry the failed compensation of ${w.workflow_id}?`, lines: ["The failed compensation runs again, then the rest of the rollback."], fields: [reasonField()], ok: "Retry compensation" },
      (v) => api.post(`${api.wf(w.workflow_id)}/retry-compensation`, withReason(v)),
    ),
  },
  "skip-compensation": {
    label: "Skip compensation…",
    when: (w) => w.status === "COMPENSATION_FAILED",
    run: (w, steps) => {
      const choices = failedCompensations(steps);
      return confirmAndRun(
        {
          title: `Skip a compensation of ${w.workflow_id}?`,
          lines: ["The step is recorded as not undone (who and why, in the audit log) and the rollback goes on with the next compensation. Undo its effect by hand."],
          fields: [
            { name: "step", label: "Step whose compensation to skip", type: "select", required: true, options: choices.map((c) => [c.step, c.label]), value: choices[0]?.step },
            reasonField(true),
          ],
          ok: "Skip compensation",
          danger: true,
        },
        (v) => api.post(`${api.wf(w.workflow_id)}/skip-compensation`, { step: Number(v.step), reason: v.reason }),
      );
    },
  },
  resume: {
    label: "Resume",
    when: (w) => ["ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED", "ENQUEUED"].includes(w.status),
    run: (w) => confirmAndRun(
      { title: `Resume ${w.workflow_id}?`, lines: ["It runs again from its last recorded step."], fields: [reasonField()], ok: "Resume" },
      (v) => api.post(`${api.wf(w.workflow_id)}/resume`, withReason(v)),
    ),
  },
  cancel: {
    label: "Cancel…",
    when: (w) => ["ENQUEUED", "PENDING"].includes(w.status),
    run: (w) => confirmAndRun(
      {
        title: `Cancel ${w.workflow_id}?`,
        fields: [
          { name: "compensate", label: "roll back: run the compensations of its completed steps", type: "checkbox", value: true },
          { name: "children", label: "cancel its child workflows too (untick to leave them running)", type: "checkbox", value: true },
          reasonField(),
        ],
        ok: "Cancel workflow",
        danger: true,
      },
      (v) => api.post(`${api.wf(w.workflow_id)}/cancel`, { compensate: v.compensate, children: v.children, ...withReason(v) }),
    ),
  },
  fork: {
    label: "Fork…",
    when: () => true,
    run: (w, steps) => {
      const forward = (steps || []).filter((s) => !["compensation", "register_compensation", "result"].includes(s.kind));
      const options = [[1, "step 1 (run it all again)"], ...forward.filter((s) => s.step_number > 1).map((s) => [s.step_number, `step ${s.step_number} ${s.name}`])];
      return confirmAndRun(
        {
          title: `Fork ${w.workflow_id}?`,
          lines: ["A new workflow starts with this one's input; the steps before the chosen one reuse the recorded results."],
          fields: [{ name: "from_step", label: "Start from step", type: "select", options, value: 1 }, reasonField()],
          ok: "Fork",
        },
        (v) => api.post(`${api.wf(w.workflow_id)}/fork`, withReason(v), { from_step: v.from_step }),
      );
    },
  },
};

// The buttons that apply to ``w`` (none for a reader). onDone(result, action) after success.
export function actionButtons(w, steps, ctx, onDone, { compact = false, only } = {}) {
  if (!ctx.canAct) return null;
  const names = (only || Object.keys(ACTIONS)).filter((name) => ACTIONS[name].when(w));
  return h("div", { class: `actions ${compact ? "compact" : ""}`, "data-testid": "actions" },
    names.map((name) => h("button", {
      type: "button",
      id: compact ? null : `action-${name}`,
      "data-action": name,
      class: name === "cancel" || name === "skip-compensation" ? "danger-outline" : "",
      text: ACTIONS[name].label,
      onclick: async () => {
        const chosenSteps = typeof steps === "function" ? await steps() : steps;
        const result = await ACTIONS[name].run(w, chosenSteps);
        if (result) {
          ctx.toast(`${ACTIONS[name].label.replace("…", "")}: ${result.workflow_id || w.workflow_id} ${result.status || ""}`);
          onDone(result, name);
        }
      },
    })),
  );
}
