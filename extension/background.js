// The service worker: starts an area selection in a tab (popup button or Alt+Shift+S),
// collects the elements in the page's main world (where React's fibers are visible), and posts
// them to the chosen session. Its host permission for the coordinator makes CORS unnecessary.
// The page is not trusted: what runs in its main world can be replaced by the page's own
// scripts, so the selection's url and title come from the tab, as the browser knows it.

import { call, describeFailure, loadSettings, saveSettings } from './api.js';

/** Injects the collector (main world) and the overlay (isolated world) into a tab. */
async function startSelection(tabId) {
  const settings = await loadSettings();
  if (!settings.coordinatorUrl || !settings.apiKey || !settings.sessionId) {
    return { ok: false, text: 'Open the extension to set the coordinator, your API key and a session first.' };
  }
  try {
    await chrome.scripting.executeScript({ target: { tabId }, files: ['collect.js'], world: 'MAIN' });
    await chrome.scripting.executeScript({ target: { tabId }, files: ['overlay.js'] });
  } catch (err) {
    return { ok: false, text: `This page cannot be selected: ${err?.message ?? err}` };
  }
  return { ok: true };
}

/** Collects the elements inside `rect` in `tab` and posts them → {ok, text, artifactId?}. */
async function sendArea(tab, frameId, rect) {
  const settings = await loadSettings();
  const tabId = tab.id;
  if (typeof tab.url !== 'string' || !/^https?:/.test(tab.url)) {
    return finish({ ok: false, text: 'Only http(s) pages can be sent to a session.' });
  }
  let selection;
  try {
    const [injection] = await chrome.scripting.executeScript({
      target: { tabId, frameIds: [frameId ?? 0] },
      world: 'MAIN',
      func: (area) => globalThis.SessionSelection?.collectSelection(area) ?? null,
      args: [rect],
    });
    selection = injection?.result;
  } catch (err) {
    return finish({ ok: false, text: `Cannot read this page: ${err?.message ?? err}` });
  }
  if (!selection || !Array.isArray(selection.elements)) {
    return finish({ ok: false, text: 'Cannot read this page’s elements.' });
  }
  if (!selection.elements.length) {
    return finish({ ok: false, text: 'No elements in that area: draw a rectangle around what you mean.' });
  }
  const { total, ...body } = selection;
  // The address and title the browser shows, whatever the page's scripts answered.
  body.url = tab.url;
  body.title = typeof tab.title === 'string' ? tab.title : '';
  if (settings.note.trim()) body.note = settings.note.trim();
  const res = await call(settings, 'POST', `/v1/sessions/${encodeURIComponent(settings.sessionId)}/selections`, body);
  if (!res.ok) return finish({ ok: false, status: res.status, text: describeFailure(res, settings) });
  const sent = body.elements.length;
  const capped = total > sent ? ` (the first ${sent} of ${total})` : '';
  const where = settings.sessionTitle ? ` “${settings.sessionTitle}”` : '';
  return finish({
    ok: true,
    artifactId: res.json?.artifact_id,
    text: `Sent ${sent} element${sent === 1 ? '' : 's'}${capped} to the session${where}.`,
  });
}

async function finish(result) {
  await saveSettings({ lastResult: { ...result, at: new Date().toISOString() } });
  return result;
}

chrome.runtime.onMessage.addListener((message, sender, sendResponse) => {
  if (message?.type === 'start-selection' && Number.isInteger(message.tabId)) {
    startSelection(message.tabId).then(sendResponse);
    return true;
  }
  if (message?.type === 'area-selected' && sender.tab?.id !== undefined && message.rect) {
    sendArea(sender.tab, sender.frameId, message.rect).then(sendResponse);
    return true;
  }
  return false;
});

chrome.commands.onCommand.addListener((command, tab) => {
  if (command === 'select-area' && tab?.id !== undefined) startSelection(tab.id);
});

// For tests and the console: the same entry point the popup's button uses.
self.startSelection = startSelection;
