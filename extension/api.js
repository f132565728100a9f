// The extension's settings (chrome.storage.local) and its calls to the coordinator.
// Used by the popup and the service worker; the API key goes only to the coordinator URL.

export const DEFAULT_URL = 'http://127.0.0.1:8787';

export async function loadSettings() {
  const s = await chrome.storage.local.get(['coordinatorUrl', 'apiKey', 'sessionId', 'sessionTitle', 'note', 'lastResult']);
  return {
    coordinatorUrl: s.coordinatorUrl || '',
    apiKey: s.apiKey || '',
    sessionId: s.sessionId || '',
    sessionTitle: s.sessionTitle || '',
    note: s.note || '',
    lastResult: s.lastResult || null,
  };
}

export function saveSettings(patch) {
  return chrome.storage.local.set(patch);
}

/** The origin of a coordinator URL (http or https), or null. */
export function coordinatorOrigin(url) {
  try {
    const u = new URL(String(url).trim());
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.origin : null;
  } catch {
    return null;
  }
}

/** The host permission pattern the extension needs to call a coordinator. */
export function originPattern(origin) {
  const u = new URL(origin);
  return `${u.protocol}//${u.hostname}/*`;
}

/** Calls the coordinator → {ok, status, json}; status 0 when it cannot be reached. */
export async function call(settings, method, path, body) {
  const origin = coordinatorOrigin(settings.coordinatorUrl);
  if (!origin) return { ok: false, status: 0, json: { error: { code: 'invalid_url', message: 'the coordinator URL is not an http(s) URL' } } };
  const headers = { accept: 'application/json', authorization: `Bearer ${settings.apiKey}` };
  let payload;
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(origin + path, { method, headers, body: payload, credentials: 'omit', cache: 'no-store' });
  } catch (err) {
    return { ok: false, status: 0, json: { error: { code: 'network', message: err?.message || 'network error' } } };
  }
  let json = null;
  try {
    json = await res.json();
  } catch {
    json = null;
  }
  return { ok: res.ok, status: res.status, json };
}

/** A sentence for a failed call, from its status and `{error: {code, message}}` body. */
export function describeFailure({ status, json }, settings = {}) {
  const message = json?.error?.message ? String(json.error.message) : '';
  const detail = message ? `: ${message}` : '';
  switch (status) {
    case 0:
      return json?.error?.code === 'invalid_url'
        ? 'Set the coordinator URL in the extension first.'
        : `Cannot reach the coordinator at ${settings.coordinatorUrl || 'its URL'}${detail}.`;
    case 400:
      return `The coordinator could not read the selection (400)${detail}.`;
    case 401:
      return 'The API key was not accepted (401). Check it in the extension’s settings.';
    case 403:
      return `Not allowed (403)${detail}.`;
    case 404:
      return 'The session was not found, or you are not a member of it (404). Pick another session.';
    case 409:
      return `The session cannot take selections now (409)${detail}.`;
    case 413:
      return `The selection is too large (413)${detail}. Select a smaller area.`;
    case 422:
      return `The coordinator refused the selection (422)${detail}.`;
    case 429:
      return `Too many requests (429)${detail}. Wait a few seconds and try again.`;
    default:
      return `The coordinator answered ${status}${detail}.`;
  }
}
