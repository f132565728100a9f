// The coordinator's HTTP API, always on this page's own origin (relative URLs only), with the
// user's API key from localStorage as a bearer token. The key never leaves this origin.

const KEY_STORAGE = 'coordinator.apiKey';

export function apiKey() {
  try {
    return localStorage.getItem(KEY_STORAGE);
  } catch {
    return null;
  }
}

export function setApiKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

/** An HTTP error with the coordinator's `{code, message}`. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls the API; resolves with the parsed JSON body, throws ApiError otherwise. */
export async function request(method, path, body, { key = apiKey() } = {}) {
  if (!path.startsWith('/')) throw new Error('API paths are relative to this origin');
  const headers = { accept: 'application/json' };
  if (key) headers.authorization = `Bearer ${key}`;
  let payload;
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, { method, headers, body: payload, credentials: 'omit', cache: 'no-store' });
  } catch (err) {
    throw new ApiError(0, 'network', err?.message || 'network error');
  }
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) {
    const error = json?.error ?? {};
    throw new ApiError(res.status, error.code ?? `http_${res.status}`, error.message ?? `HTTP ${res.status}`);
  }
  return json;
}

const enc = encodeURIComponent;

export const api = {
  me: () => request('GET', '/v1/me'),
  repos: () => request('GET', '/v1/repos'),
  sessions: (cursor) => request('GET', `/v1/sessions?limit=20${cursor ? `&cursor=${enc(cursor)}` : ''}`),
  createSession: (body) => request('POST', '/v1/sessions', body),
  session: (id) => request('GET', `/v1/sessions/${enc(id)}`),
  addMember: (id, userId) => request('POST', `/v1/sessions/${enc(id)}/members`, { user_id: userId, role: 'member' }),
  mintToken: (id) => request('POST', `/v1/sessions/${enc(id)}/tokens`),
  events: (id, since, limit) => request('GET', `/v1/sessions/${enc(id)}/events?since=${since}&limit=${limit}`),
  prompt: (id, body) => request('POST', `/v1/sessions/${enc(id)}/prompts`, body),
  cancel: (id, messageId) => request('POST', `/v1/sessions/${enc(id)}/cancel`, { message_id: messageId }),
  stop: (id) => request('POST', `/v1/sessions/${enc(id)}/stop`),
  metrics: (query) => request('GET', `/v1/metrics?${query}`),
};
