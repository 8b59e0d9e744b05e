// The workflow filters shared by the list, the inbox and bulk actions: a form <-> an object
// with the API's query names. Times are typed and shown in UTC, like every date in the console.
import { h, STATUSES } from "./dom.js";

export const FIELDS = [
  ["id_prefix", "id prefix"],
  ["name", "name"],
  ["queue", "queue"],
  ["app_version", "version"],
  ["parent_workflow_id", "parent"],
  ["attribute", "attribute (name=value)"],
];

// The API's body form of a filter (bulk actions): "attribute" becomes {"attributes": {name: value}}.
export function toBody(filter) {
  const body = { ...filter };
  delete body.attribute;
  const pair = (filter.attribute || "").match(/^\s*([^=:]+?)\s*[=:]\s*(.*?)\s*$/);
  if (pair) body.attributes = { [pair[1]]: pair[2] };
  return body;
}

// The API's query form of the attribute filter: name:value.
export function queryValue(key, value) {
  return key === "attribute" ? value.replace(/^\s*([^=:]+?)\s*=\s*/, "$1:") : value;
}

export function fromQuery(params) {
  const filter = {};
  const statuses = params.getAll("status").filter(Boolean);
  if (statuses.length) filter.status = statuses;
  for (const [key] of FIELDS) if (params.get(key)) filter[key] = params.get(key);
  for (const key of ["created_after", "created_before"]) if (params.get(key)) filter[key] = params.get(key);
  return filter;
}

export function toQuery(filter) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(filter)) {
    if (Array.isArray(value)) value.forEach((v) => params.append(key, v));
    else if (value) params.append(key, queryValue(key, value));
  }
  return params.toString();
}

// Times are typed as the console shows them ("2026-06-01 12:00[:00]", UTC) and sent as ISO.
const toInput = (iso) => (iso ? iso.replace("T", " ").replace(/(\.\d+)?Z$/, "") : "");
function fromInput(text) {
  const value = text.trim().replace(" ", "T").replace(/Z$/i, "");
  if (!value) return "";
  const date = new Date(`${value}${value.length <= 10 ? "T00:00" : ""}Z`);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString();
}

// The filter form; onSubmit(filter) when applied.
export function filterForm(filter, onSubmit, { statusChoice = true, id = "filters" } = {}) {
  const status = h(
    "select",
    { name: "status", id: `${id}-status`, "data-testid": "filter-status" },
    h("option", { value: "", text: "any status" }),
    STATUSES.map((s) => h("option", { value: s, text: s, selected: (filter.status || [])[0] === s })),
  );
  const inputs = FIELDS.map(([key, label]) =>
    h("input", { name: key, id: `${id}-${key}`, placeholder: label, value: filter[key] || "", "data-testid": `filter-${key}` }),
  );
  const after = h("input", { class: "time-input", name: "created_after", id: `${id}-after`, value: toInput(filter.created_after), placeholder: "YYYY-MM-DD HH:MM", title: "created after (UTC)" });
  const before = h("input", { class: "time-input", name: "created_before", id: `${id}-before`, value: toInput(filter.created_before), placeholder: "YYYY-MM-DD HH:MM", title: "created before (UTC)" });
  const form = h(
    "form",
    { class: "filters", id, "data-testid": id },
    statusChoice ? status : null,
    inputs,
    h("label", { class: "time" }, "created ", after),
    h("label", { class: "time" }, "– ", before, " UTC"),
    h("button", { type: "submit", class: "primary", id: `${id}-apply`, text: "Apply" }),
    h("button", { type: "reset", id: `${id}-clear`, text: "Clear" }),
  );
  const read = () => {
    const next = {};
    if (statusChoice && status.value) next.status = [status.value];
    for (const input of inputs) if (input.value.trim()) next[input.name] = input.value.trim();
    if (after.value) next.created_after = fromInput(after.value);
    if (before.value) next.created_before = fromInput(before.value);
    return next;
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onSubmit(read());
  });
  form.addEventListener("reset", (event) => {
    event.preventDefault(); // (a native reset restores the initial values, not empty ones)
    for (const input of [status, ...inputs, after, before]) input.value = "";
    onSubmit({});
  });
  form.read = read;
  return form;
}
