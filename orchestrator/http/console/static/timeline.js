// A saga's steps on a time axis: one row per recorded step (compensations, sleeps, messages,
// events and child workflows included), bars positioned in % of the saga's run so far.
import { fmtDuration, fmtTime, h, jsonBlock, workflowLink } from "./dom.js";

const HIDDEN_KINDS = new Set(["register_compensation"]); // shown on the step they belong to
const KIND_LABEL = {
  step: "step", compensation: "undo", child: "child", result: "result", sleep: "sleep",
  now: "now", random: "random", send: "send", recv: "recv", set_event: "set event",
  get_event: "get event", stream: "stream", patch: "patch",
};

const ms = (iso) => (iso ? new Date(iso).getTime() : null);

function axisTicks(t0, span) {
  const ticks = [];
  for (let i = 0; i <= 4; i += 1) {
    ticks.push(h("span", { class: "tick", style: { left: `${i * 25}%` }, text: `+${fmtDuration((span * i) / 4)}` }));
  }
  return h("div", { class: "tl-axis", title: `0 = ${fmtTime(new Date(t0).toISOString())}` }, ticks);
}

function traceLink(url, attrs) {
  if (!url) return null;
  return h("a", { href: url, target: "_blank", rel: "noopener noreferrer", class: "trace", ...attrs, text: "trace" });
}

export function timeline(workflow, steps, { now = Date.now(), open = new Set() } = {}) {
  const shown = steps.filter((s) => !HIDDEN_KINDS.has(s.kind));
  const running = !workflow.finished_at && ["PENDING", "COMPENSATING", "ENQUEUED"].includes(workflow.status);
  const t0 = ms(workflow.started_at) || ms(workflow.created_at) || now;
  let end = ms(workflow.finished_at) || (running ? now : ms(workflow.updated_at) || now);
  for (const s of shown) end = Math.max(end, ms(s.finished_at) || 0);
  if (running) end = Math.max(end, now);
  const span = Math.max(end - t0, 1);
  const pct = (t) => `${Math.min(100, Math.max(0, ((t - t0) / span) * 100)).toFixed(3)}%`;
  const rows = shown.map((s) => {
    let finish = ms(s.finished_at) || ms(s.started_at) || t0;
    const startAt = ms(s.started_at) || finish;
    const wake = s.kind === "sleep" ? Number(s.output) : NaN; // a sleep records when it wakes (ms)
    if (wake > finish && wake < finish + 366 * 86_400_000) finish = Math.min(wake, Math.max(now, finish));
    const width = Math.max(((finish - startAt) / span) * 100, 0);
    const took = Math.max(finish - startAt, 0);
    const undo = s.kind === "compensation" ? h("span", { class: "undoes", "data-compensates": s.compensates_step, text: `undoes #${s.compensates_step}` }) : null;
    const child = s.child_workflow_id ? workflowLink(s.child_workflow_id, { class: "mono child-link" }) : null;
    const tooltip = [
      `#${s.step_number} ${s.name} (${s.kind})`,
      `started ${fmtTime(s.started_at)}`,
      `finished ${fmtTime(s.finished_at)}`,
      `took ${fmtDuration(took)}`,
      `attempts ${s.attempts}`,
      s.compensation ? `compensation: ${s.compensation}` : "",
      s.error ? `error: ${s.error_type || ""} ${s.error}` : "",
    ].filter(Boolean).join("\n");
    const detail = h("div", { class: "tl-detail", "data-step-detail": s.step_number, hidden: !open.has(s.step_number) },
      h("div", { class: "muted", text: `${fmtTime(s.started_at)} → ${fmtTime(s.finished_at)} · ${s.attempts} attempt(s)` }),
      s.error ? h("pre", { class: "json error", text: `${s.error_type || "Error"}: ${s.error}` }) : jsonBlock(s.output, { class: "json small" }));
    const toggle = () => {
      detail.hidden = !detail.hidden;
      if (detail.hidden) open.delete(s.step_number);
      else open.add(s.step_number);
    };
    return [h(
      "div",
      { class: `tl-row kind-${s.kind} ${s.status === "ERROR" ? "failed" : ""}`, "data-step": s.step_number, "data-kind": s.kind, "data-status": s.status, title: "click: recorded result", onclick: (event) => event.target.closest("a") || toggle() },
      h("div", { class: "tl-label" },
        h("span", { class: "num", text: `#${s.step_number}` }),
        h("span", { class: `kind kind-${s.kind}`, text: KIND_LABEL[s.kind] || s.kind }),
        h("span", { class: "name", title: s.name, text: s.name }),
        s.attempts > 1 ? h("span", { class: "attempts", "data-attempts": s.attempts, title: "attempts", text: `×${s.attempts}` }) : null,
        undo,
        s.compensation ? h("span", { class: "comp", title: `compensation if the saga fails: ${s.compensation}`, text: `↺ ${s.compensation}` }) : null,
        child,
        traceLink(s.trace_url, { "data-step-trace": s.step_number }),
      ),
      h("div", { class: "tl-track", title: tooltip },
        h("div", { class: `tl-bar ${width < 0.4 ? "instant" : ""}`, style: { left: pct(startAt), width: `${width.toFixed(3)}%` } }),
        ((finish - t0) / span > 0.88
          ? h("span", { class: "tl-dur before", style: { left: pct(startAt) }, text: fmtDuration(took) })
          : h("span", { class: "tl-dur", style: { left: pct(finish) }, text: fmtDuration(took) })),
      ),
    ), detail];
  });
  if (running) {
    const last = shown.reduce((t, s) => Math.max(t, ms(s.finished_at) || 0), t0);
    rows.push(h("div", { class: "tl-row tl-pending", id: "tl-pending" },
      h("div", { class: "tl-label" }, h("span", { class: "num", text: "…" }), h("span", { class: "name muted", text: workflow.status === "COMPENSATING" ? "rolling back" : "running / waiting" })),
      h("div", { class: "tl-track" }, h("div", { class: "tl-bar pending", style: { left: pct(last), width: `${(((now - last) / span) * 100).toFixed(3)}%` } })),
    ));
  }
  return h("div", { class: "timeline", id: "timeline", "data-testid": "timeline", "data-steps": shown.length },
    h("div", { class: "tl-row tl-head" }, h("div", { class: "tl-label muted", text: `${shown.length} steps · ${fmtDuration(span)}` }), h("div", { class: "tl-track" }, axisTicks(t0, span))),
    rows.length ? rows : h("div", { class: "empty", text: "No step recorded yet." }),
  );
}
