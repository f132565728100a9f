// The popup (also the options page): the coordinator URL and API key, the session to send
// to, a note, and the "Select area" button.

import { DEFAULT_URL, call, coordinatorOrigin, describeFailure, loadSettings, originPattern, saveSettings } from './api.js';

const $ = (id) => document.getElementById(id);
const form = $('settings');
const urlInput = $('url');
const keyInput = $('key');
const settingsStatus = $('settings-status');
const sessionSection = $('session-section');
const sessionSelect = $('session');
const openLink = $('open-session');
const noteInput = $('note');
const selectButton = $('select');
const last = $('last');

function status(el, text, kind = '') {
  el.textContent = text;
  el.className = `status ${kind}`;
}

async function ensurePermission(origin) {
  const origins = [originPattern(origin)];
  if (await chrome.permissions.contains({ origins })) return true;
  // Needs the click that submitted the form (a user gesture).
  return chrome.permissions.request({ origins });
}

async function loadSessions(settings) {
  const res = await call(settings, 'GET', '/v1/sessions?limit=50');
  if (!res.ok) {
    status(settingsStatus, describeFailure(res, settings), 'error');
    sessionSection.hidden = true;
    return;
  }
  sessionSelect.replaceChildren();
  const sessions = (res.json?.sessions ?? []).filter((s) => s.status !== 'archived');
  if (!sessions.length) {
    sessionSelect.append(new Option('No open sessions: start one in the web page', ''));
  }
  for (const s of sessions) {
    const option = new Option(`${s.title || s.repo} · ${s.repo}`, s.id);
    option.dataset.title = s.title || s.repo;
    sessionSelect.append(option);
  }
  if (sessions.some((s) => s.id === settings.sessionId)) sessionSelect.value = settings.sessionId;
  sessionSection.hidden = false;
  await chooseSession();
}

async function chooseSession() {
  const option = sessionSelect.selectedOptions[0];
  const sessionId = option?.value || '';
  await saveSettings({ sessionId, sessionTitle: option?.dataset.title || '' });
  const { coordinatorUrl } = await loadSettings();
  openLink.hidden = !sessionId;
  if (sessionId) openLink.href = `${coordinatorOrigin(coordinatorUrl)}/#/s/${encodeURIComponent(sessionId)}`;
  selectButton.disabled = !sessionId;
}

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const origin = coordinatorOrigin(urlInput.value);
  if (!origin) {
    status(settingsStatus, 'The coordinator URL must start with http:// or https://.', 'error');
    return;
  }
  let granted = false;
  try {
    granted = await ensurePermission(origin);
  } catch (err) {
    status(settingsStatus, `Cannot ask for access to ${origin}: ${err?.message ?? err}`, 'error');
    return;
  }
  if (!granted) {
    status(settingsStatus, `The extension needs access to ${origin} to send selections there.`, 'error');
    return;
  }
  const patch = { coordinatorUrl: origin };
  if (keyInput.value.trim()) patch.apiKey = keyInput.value.trim();
  await saveSettings(patch);
  keyInput.value = '';
  const settings = await loadSettings();
  if (!settings.apiKey) {
    status(settingsStatus, 'Enter your API key.', 'error');
    return;
  }
  keyInput.placeholder = 'saved (type a new key to replace it)';
  status(settingsStatus, 'Checking…');
  const me = await call(settings, 'GET', '/v1/me');
  if (!me.ok) {
    status(settingsStatus, describeFailure(me, settings), 'error');
    return;
  }
  status(settingsStatus, `Signed in as ${me.json?.user?.name ?? 'you'}.`, 'ok');
  await loadSessions(settings);
});

sessionSelect.addEventListener('change', chooseSession);
noteInput.addEventListener('input', () => saveSettings({ note: noteInput.value }));

selectButton.addEventListener('click', async () => {
  const [tab] = await chrome.tabs.query({ active: true, currentWindow: true });
  if (!tab?.id) {
    status(last, 'No tab to select in.', 'error');
    return;
  }
  const answer = await chrome.runtime.sendMessage({ type: 'start-selection', tabId: tab.id });
  if (answer?.ok) window.close();
  else status(last, answer?.text ?? 'Cannot start a selection here.', 'error');
});

(async () => {
  const settings = await loadSettings();
  urlInput.value = settings.coordinatorUrl || DEFAULT_URL;
  noteInput.value = settings.note;
  if (settings.apiKey) keyInput.placeholder = 'saved (type a new key to replace it)';
  if (settings.lastResult?.text) status(last, `Last: ${settings.lastResult.text}`, settings.lastResult.ok ? 'ok' : 'error');
  if (settings.coordinatorUrl && settings.apiKey) {
    status(settingsStatus, 'Checking…');
    const me = await call(settings, 'GET', '/v1/me');
    if (me.ok) {
      status(settingsStatus, `Signed in as ${me.json?.user?.name ?? 'you'}.`, 'ok');
      await loadSessions(settings);
    } else {
      status(settingsStatus, describeFailure(me, settings), 'error');
    }
  }
})();
