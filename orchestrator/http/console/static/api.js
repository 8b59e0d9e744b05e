// The JSON API, as the console calls it: same origin, the session cookie, and on every POST
// the CSRF token (from the orchestrator_csrf cookie) and the surface header for the audit.

export const ROOT = (() => {
  const path = location.pathname;
  const at = path.indexOf("/console");
  return at > 0 ? path.slice(0, at) : "";
})();

export class ApiError extends Error {
  constructor(status, code, message, detail) {
    super(message);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return null;
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) value.forEach((item) => search.append(key, item));
    else search.append(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

export function toLogin() {
  location.assign(`${ROOT}/console/login`);
}

async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") {
    headers["X-Orchestrator-Surface"] = "console";
    const csrf = cookie("orchestrator_csrf");
    if (csrf) headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) headers["Content-Type"] = "application/json";
  }
  const response = await fetch(`${ROOT}${path}`, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (response.status === 401) {
    toLogin();
    throw new ApiError(401, "unauthorized", "log in to continue");
  }
  if (!response.ok) {
    const message = (data && (data.message || data.error)) || text || response.statusText;
    throw new ApiError(response.status, data && data.error, message, data && data.detail);
  }
  return data;
}

export const get = (path, params) => request("GET", `${path}${query(params)}`);
export const post = (path, body, params) => request("POST", `${path}${query(params)}`, body);
export const wf = (id) => `/workflows/${encodeURIComponent(id)}`;

// Who is looking: role (operator/reader), name, and the trace URL template. A service without
// the endpoint (older) is treated as key-less: an operator on loopback.
export async function me() {
  try {
    return await get("/console/api/me");
  } catch (error) {
    if (error.status === 404) return { role: "operator", name: "", auth: "none", trace_url: null };
    throw error;
  }
}

export async function logout() {
  try {
    await request("POST", "/console/logout");
  } finally {
    toLogin();
  }
}
