// The coordinator's HTTP API, always on this page's own origin (relative URLs only). A page
// signed in with an API key sends it from localStorage as a bearer token (the key never leaves
// this origin); a page signed in with GitHub holds no credential at all: the coordinator's
// HttpOnly session cookie goes with same-origin requests, and the browser adds the `Origin`
// the coordinator checks on requests that change something.

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
    // With a key, no cookie: the key says who this is. Without one, the session cookie does.
    const credentials = key ? 'omit' : 'same-origin';
    res = await fetch(path, { method, headers, body: payload, credentials, cache: 'no-store' });
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
  authMethods: () => request('GET', '/v1/auth/methods', undefined, { key: null }),
  logout: () => request('POST', '/v1/auth/logout', undefined, { key: null }),
  me: () => request('GET', '/v1/me'),
  repos: () => request('GET', '/v1/repos'),
  sessions: (cursor) => request('GET', `/v1/sessions?limit=20${cursor ? `&cursor=${enc(cursor)}` : ''}`),
  createSession: (body) => request('POST', '/v1/sessions', body),
  session: (id) => request('GET', `/v1/sessions/${enc(id)}`),
  addMember: (id, userId) => request('POST', `/v1/sessions/${enc(id)}/members`, { user_id: userId, role: 'member' }),
  /** A single-use, 30-second connect ticket for one socket: no token or key goes in a URL. */
  ticket: (id) => request('POST', `/v1/sessions/${enc(id)}/tickets`),
  events: (id, since, limit) => request('GET', `/v1/sessions/${enc(id)}/events?since=${since}&limit=${limit}`),
  prompt: (id, body) => request('POST', `/v1/sessions/${enc(id)}/prompts`, body),
  cancel: (id, messageId) => request('POST', `/v1/sessions/${enc(id)}/cancel`, { message_id: messageId }),
  stop: (id) => request('POST', `/v1/sessions/${enc(id)}/stop`),
  pullRequest: (id, body = {}) => request('POST', `/v1/sessions/${enc(id)}/pull-request`, body),
  metrics: (query) => request('GET', `/v1/metrics?${query}`),
};
