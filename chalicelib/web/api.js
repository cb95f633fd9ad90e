// The JSON API, called with fetch. URLs are relative ("api/images"): the page's <base> is the
// stage's root, so the same page works locally and under an API Gateway stage prefix.

const TOKEN = "pixelake.token";
const API_KEY = "pixelake.apiKey";
const EMAIL = "pixelake.email";

export class ApiError extends Error {
  constructor(status, code, message, body = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

// An endpoint this deployment does not have yet: a 404 from the route table, or API Gateway's
// (and chalice local's) 403 for an unknown path, which has no Pixelake error body.
export function endpointMissing(error) {
  return error instanceof ApiError && Boolean(error.unknownRoute);
}

export const credentials = {
  get token() { return sessionStorage.getItem(TOKEN); },
  get apiKey() { return sessionStorage.getItem(API_KEY); },
  get email() { return sessionStorage.getItem(EMAIL); },
  get signedIn() { return Boolean(this.token || this.apiKey); },
  useToken(token, email) {
    sessionStorage.setItem(TOKEN, token);
    sessionStorage.removeItem(API_KEY);
    if (email) sessionStorage.setItem(EMAIL, email);
  },
  useApiKey(key) {
    sessionStorage.setItem(API_KEY, key);
    sessionStorage.removeItem(TOKEN);
    sessionStorage.removeItem(EMAIL);
  },
  clear() {
    for (const name of [TOKEN, API_KEY, EMAIL]) sessionStorage.removeItem(name);
  },
};

export function authHeaders() {
  if (credentials.token) return { Authorization: `Bearer ${credentials.token}` };
  if (credentials.apiKey) return { "X-API-Key": credentials.apiKey };
  return {};
}

// Views register what to do when the API says "sign in first" (a 401).
let onUnauthorized = () => {};
export function whenUnauthorized(handler) { onUnauthorized = handler; }

export async function api(path, { method = "GET", body, query, signal } = {}) {
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== "") params.set(name, value);
    }
    const text = params.toString();
    if (text) url += (url.includes("?") ? "&" : "?") + text;
  }
  const headers = { Accept: "application/json", ...authHeaders() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, { method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "network_error", "The API could not be reached. Check your connection and try again.");
  }
  if (response.status === 204 || response.status === 304) return null;
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (response.ok) return payload;
  const error = payload && payload.error
    ? new ApiError(response.status, payload.error.code, payload.error.message, payload)
    : new ApiError(response.status, "http_" + response.status,
      (payload && payload.message) || `The API answered ${response.status} ${response.statusText}`, payload);
  // Unknown routes answer without Pixelake's error envelope.
  error.unknownRoute = !(payload && payload.error) && [403, 404, 405].includes(response.status);
  if (response.status === 401) onUnauthorized(error);
  throw error;
}

// Every page of a cursor-paginated list, up to `max` items.
export async function listAll(path, { query = {}, max = 300 } = {}) {
  const items = [];
  let cursor = null;
  do {
    const page = await api(path, { query: { ...query, limit: 100, cursor } });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}

// Wait for a task to finish, long-polling GET /api/tasks/{id}?wait=…
export async function waitForTask(taskId, { signal, onUpdate } = {}) {
  for (;;) {
    const task = await api(`api/tasks/${taskId}`, { query: { wait: 20 }, signal });
    if (onUpdate) onUpdate(task);
    if (task.status === "succeeded" || task.status === "failed") return task;
  }
}
