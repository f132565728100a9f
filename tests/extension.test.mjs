// The Chrome extension (extension/): its element collector in a plain page, and the unpacked
// MV3 extension in headless Chromium, from its popup through a dragged rectangle to the
// selection in the session's timeline in the web client.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createSession, createUser, eventually, useServer } from './support/server.mjs';
import {
  EXTENSION_DIR,
  collectPageErrors,
  launchBrowser,
  launchWithExtension,
  screenshot,
  signInContext,
} from './support/browser.mjs';

let server;
let api;
useServer({
  setup: async (s, h) => {
    server = s;
    api = h;
  },
});

// A tiny web site with the test page (plain elements and a React-rendered card).
const FIXTURE = path.join(path.dirname(new URL(import.meta.url).pathname), 'fixtures', 'dashboard.html');
let site;
let pageUrl;
before(async () => {
  const html = await readFile(FIXTURE);
  site = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(html);
  });
  await new Promise((resolve) => site.listen(0, '127.0.0.1', resolve));
  pageUrl = `http://127.0.0.1:${site.address().port}/dashboard`;
});
after(() => new Promise((resolve) => (site ? site.close(resolve) : resolve())));

// The revenue card is at (20, 100), 300×120; the users card at (360, 100). This rectangle
// holds the revenue card and nothing of the users card.
const AROUND_REVENUE = { x: 10, y: 90, width: 320, height: 140 };

test('the collector finds the elements in a rectangle, with React components and unique selectors', { timeout: 60_000 }, async (t) => {
  const chrome = await launchBrowser();
  t.after(() => chrome.close());
  const page = collectPageErrors(await chrome.browser.newPage({ viewport: { width: 1280, height: 800 } }));
  await page.goto(pageUrl);
  // The same file the extension injects.
  await page.addScriptTag({ path: path.join(EXTENSION_DIR, 'collect.js') });

  const revenue = await page.evaluate((rect) => SessionSelection.collectSelection(rect), AROUND_REVENUE);
  assert.equal(revenue.url, pageUrl);
  assert.equal(revenue.title, 'Revenue dashboard');
  assert.deepEqual(revenue.viewport, { width: 1280, height: 800 });
  assert.deepEqual(revenue.elements.map((e) => e.tag), ['div', 'h2', 'p', 'span']);
  assert.deepEqual(revenue.elements[0], {
    tag: 'div',
    classes: ['card', 'revenue-card'],
    id: 'revenue',
    text: 'Revenue $12,400 +4%',
    rect: { x: 20, y: 100, width: 300, height: 120 },
    react_component: 'RevenueCard',
    selector: '#revenue',
  });
  assert.ok(revenue.elements.every((e) => e.react_component === 'RevenueCard'), 'children resolve to the component through .return');

  // Selectors are unique and select the element they describe.
  const checks = await page.evaluate((rect) => {
    const { elements } = SessionSelection.collectElements({ x: 0, y: 0, width: 1280, height: 800 });
    return elements.map((e) => {
      const found = document.querySelectorAll(e.selector);
      const r = found[0]?.getBoundingClientRect();
      return { selector: e.selector, count: found.length, sameRect: !!r && Math.round(r.left) === e.rect.x && Math.round(r.top) === e.rect.y };
    }).concat([{ rect }]);
  }, AROUND_REVENUE);
  for (const c of checks.slice(0, -1)) {
    assert.equal(c.count, 1, `${c.selector} selects one element`);
    assert.ok(c.sameRect, `${c.selector} selects the described element`);
  }

  // The users card was rendered by a memo component with a displayName; plain elements have none.
  const users = await page.evaluate(() => SessionSelection.collectElements({ x: 350, y: 90, width: 320, height: 140 }).elements);
  assert.equal(users[0].react_component, 'UsersCard');
  const plain = await page.evaluate(() => SessionSelection.collectElements({ x: 0, y: 250, width: 700, height: 120 }).elements);
  assert.deepEqual(plain.map((e) => e.tag), ['ul', 'li', 'li', 'li']);
  assert.ok(plain.every((e) => !('react_component' in e)));
  assert.equal(plain[3].text.length, 100, 'text is cut to 100 characters');
  assert.deepEqual(plain.slice(1).map((e) => e.selector), ['ul > li:nth-of-type(1)', 'ul > li:nth-of-type(2)', 'ul > li:nth-of-type(3)']);

  // Mostly inside counts; barely touched does not; the extension's own overlay never counts.
  const partial = await page.evaluate(() => SessionSelection.collectElements({ x: 10, y: 90, width: 200, height: 140 }).elements.map((e) => e.tag));
  assert.deepEqual(partial, ['div', 'h2', 'p', 'span'], 'the card is 63% inside, so it counts');
  const edge = await page.evaluate(() => SessionSelection.collectElements({ x: 10, y: 90, width: 100, height: 140 }).elements.map((e) => e.tag));
  assert.deepEqual(edge, ['span'], 'only the small trend label is mostly inside');
  const withOverlay = await page.evaluate((rect) => {
    const overlay = document.createElement('div');
    overlay.setAttribute('data-session-selection', 'overlay');
    overlay.style.cssText = 'position:fixed;inset:0;';
    document.body.append(overlay);
    const tags = SessionSelection.collectElements(rect).elements.map((e) => e.tag);
    overlay.remove();
    return tags;
  }, AROUND_REVENUE);
  assert.deepEqual(withOverlay, ['div', 'h2', 'p', 'span']);

  // At most 2,000 elements; `total` says how many were inside.
  const capped = await page.evaluate(() => {
    const box = document.createElement('div');
    box.style.cssText = 'position:absolute;left:700px;top:400px;width:500px;display:flex;flex-wrap:wrap;';
    for (let i = 0; i < 2500; i++) {
      const cell = document.createElement('i');
      cell.style.cssText = 'display:block;width:5px;height:5px;';
      box.append(cell);
    }
    document.body.append(box);
    const { elements, total } = SessionSelection.collectElements({ x: 690, y: 390, width: 520, height: 400 });
    box.remove();
    return { n: elements.length, total };
  });
  assert.deepEqual(capped, { n: 2000, total: 2501 });
  assert.deepEqual(page.errors, []);
});

/** Runs the extension's "Select area" in the tab showing `url`, then drags over `rect`. */
async function selectArea(ext, page, url, rect) {
  await page.bringToFront();
  const started = await ext.serviceWorker.evaluate(async (u) => {
    const [tab] = await chrome.tabs.query({ url: u });
    return self.startSelection(tab.id);
  }, url);
  assert.deepEqual(started, { ok: true });
  await page.locator('[data-session-selection="overlay"]').waitFor();
  await page.mouse.move(rect.x, rect.y);
  await page.mouse.down();
  await page.mouse.move(rect.x + rect.width / 2, rect.y + rect.height / 2, { steps: 4 });
  await page.mouse.move(rect.x + rect.width, rect.y + rect.height, { steps: 4 });
  await page.mouse.up();
}

/** The text of the `.message` element anywhere under a CDP DOM node, shadow roots included. */
function messageText(node) {
  const attrs = node.attributes ?? [];
  const isMessage = attrs.some((value, i) => i % 2 === 0 && value === 'class' && attrs[i + 1] === 'message');
  if (isMessage) return (node.children ?? []).map((child) => child.nodeValue ?? '').join('');
  for (const child of [...(node.shadowRoots ?? []), ...(node.children ?? [])]) {
    const text = messageText(child);
    if (text !== null) return text;
  }
  return null;
}

/**
 * The text of the extension's notice in the page, once it is no longer "Sending…". Its shadow
 * root is closed, so neither the page nor a locator can see into it; the DevTools protocol can.
 */
async function notice(page) {
  const cdp = await page.context().newCDPSession(page);
  try {
    return await eventually(async () => {
      const { root } = await cdp.send('DOM.getDocument', { depth: -1, pierce: true });
      const text = messageText(root);
      return text && !text.startsWith('Sending') ? text : null;
    }, { ms: 15_000, every: 100, what: 'the extension\u2019s notice' });
  } finally {
    await cdp.detach().catch(() => {});
  }
}

test('the unpacked extension sends a dragged selection that shows up in the session and can go with a prompt', { timeout: 120_000 }, async (t) => {
  const alice = await createUser(server, 'Alice', { repos: ['acme/*'] });
  const { session } = await createSession(server, alice, { title: 'Dashboard fixes' });
  const ext = await launchWithExtension();
  t.after(() => ext.close());

  // Set up through the popup (opened as a page: the toolbar cannot be clicked headless).
  const popup = collectPageErrors(await ext.context.newPage());
  await popup.goto(`chrome-extension://${ext.extensionId}/popup.html`);
  await popup.getByLabel('Coordinator URL').fill(server.url);
  await popup.getByLabel('API key').fill(alice.key);
  await popup.getByRole('button', { name: 'Save' }).click();
  await popup.getByText('Signed in as Alice.').waitFor();
  // The list of sessions follows; the only one is chosen.
  await popup.getByRole('link', { name: 'Open the session' }).waitFor();
  assert.equal(await popup.getByLabel('Send to').inputValue(), session.id);
  assert.equal(await popup.getByRole('link', { name: 'Open the session' }).getAttribute('href'), `${server.url}/#/s/${session.id}`);
  await popup.getByLabel('Note (optional)').fill('this card overflows on mobile');
  assert.equal(await popup.getByLabel('API key').inputValue(), '', 'the saved key is not shown again');
  await screenshot(popup, 'extension-popup');

  const page = collectPageErrors(await ext.context.newPage());
  await page.goto(pageUrl);
  await selectArea(ext, page, pageUrl, AROUND_REVENUE);
  assert.equal(await notice(page), 'Sent 4 elements to the session “Dashboard fixes”.');
  assert.equal(await page.locator('[data-session-selection="overlay"]').count(), 0, 'the overlay is gone');

  const artifacts = await api.get(`/v1/sessions/${session.id}/artifacts`, { key: alice.key });
  assert.equal(artifacts.json.artifacts.length, 1);
  const { id: artifactId, type, data } = artifacts.json.artifacts[0];
  assert.equal(type, 'dom_selection');
  assert.equal(data.url, pageUrl);
  assert.equal(data.title, 'Revenue dashboard');
  assert.equal(data.note, 'this card overflows on mobile');
  assert.deepEqual(data.viewport, { width: 1280, height: 800 });
  assert.deepEqual(data.elements.map((e) => [e.tag, e.selector, e.react_component]), [
    ['div', '#revenue', 'RevenueCard'],
    ['h2', '#revenue > h2', 'RevenueCard'],
    ['p', '#revenue > p', 'RevenueCard'],
    ['span', '#revenue > span', 'RevenueCard'],
  ]);

  // The popup remembers the outcome.
  await popup.reload();
  await popup.getByText('Last: Sent 4 elements').waitFor();

  // The web client shows it in the timeline; attached to a prompt, it goes with it.
  await signInContext(ext.context, alice.key);
  const web = collectPageErrors(await ext.context.newPage());
  await web.goto(`${server.url}/#/s/${session.id}`);
  const card = web.locator('.timeline .artifact', { hasText: 'Revenue dashboard' });
  await card.waitFor();
  assert.match(await card.textContent(), /this card overflows on mobile/);
  assert.match(await card.textContent(), /4 elements/);
  await card.getByText('4 elements').click();
  await card.getByText('<RevenueCard>').first().waitFor();
  await card.getByRole('button', { name: 'Attach to next prompt' }).click();
  await web.getByLabel('Prompt', { exact: true }).fill('Make this card wrap on phones');
  await web.keyboard.press('Enter');
  await web.locator('.entry.message', { hasText: 'Make this card wrap' }).locator('.selection-ref', { hasText: 'Revenue dashboard' }).waitFor();
  const events = await api.get(`/v1/sessions/${session.id}/events?since=0`, { key: alice.key });
  assert.deepEqual(events.json.events.filter((e) => e.type === 'message').at(-1).selection_ids, [artifactId]);
  for (const p of [popup, page, web]) assert.deepEqual(p.errors, []);
});

test('the extension tells the user when the coordinator refuses a selection, and Esc cancels', { timeout: 120_000 }, async (t) => {
  const alice = await createUser(server, 'Alice', { repos: ['acme/*'] });
  const other = await createUser(server, 'Olga', { repos: ['acme/*'] });
  const { session } = await createSession(server, alice, { title: 'Mine' });
  const { session: foreign } = await createSession(server, other, { title: 'Not mine' });
  const ext = await launchWithExtension();
  t.after(() => ext.close());
  const setSettings = (patch) => ext.serviceWorker.evaluate((p) => chrome.storage.local.set(p), patch);
  const page = collectPageErrors(await ext.context.newPage());
  await page.goto(pageUrl);

  // Nothing set up yet: the extension says what to do instead of injecting anything.
  const unset = await ext.serviceWorker.evaluate(async (u) => {
    const [tab] = await chrome.tabs.query({ url: u });
    return self.startSelection(tab.id);
  }, pageUrl);
  assert.equal(unset.ok, false);
  assert.match(unset.text, /set the coordinator, your API key and a session/);

  await setSettings({ coordinatorUrl: server.url, apiKey: 'sk_wrong', sessionId: session.id, sessionTitle: 'Mine' });
  await selectArea(ext, page, pageUrl, AROUND_REVENUE);
  assert.match(await notice(page), /API key was not accepted \(401\)/);

  await setSettings({ apiKey: alice.key, sessionId: foreign.id });
  await selectArea(ext, page, pageUrl, AROUND_REVENUE);
  assert.match(await notice(page), /session was not found, or you are not a member of it \(404\)/);

  // An empty area is not sent.
  await setSettings({ sessionId: session.id });
  await selectArea(ext, page, pageUrl, { x: 900, y: 500, width: 100, height: 100 });
  assert.match(await notice(page), /No elements in that area/);

  // Esc cancels without sending.
  await page.bringToFront();
  await ext.serviceWorker.evaluate(async (u) => {
    const [tab] = await chrome.tabs.query({ url: u });
    return self.startSelection(tab.id);
  }, pageUrl);
  await page.locator('[data-session-selection="overlay"]').waitFor();
  await page.keyboard.press('Escape');
  assert.equal(await notice(page), 'Selection cancelled.');
  assert.equal(await page.locator('[data-session-selection="overlay"]').count(), 0);

  const artifacts = await api.get(`/v1/sessions/${session.id}/artifacts`, { key: alice.key });
  assert.equal(artifacts.json.artifacts.length, 0, 'nothing was posted');
  await eventually(async () => (await ext.serviceWorker.evaluate(() => chrome.storage.local.get('lastResult'))).lastResult?.ok === false);
  assert.deepEqual(page.errors, []);
});

test('the extension trusts no page: url and title come from the tab, its shadow roots are closed, made-up events do nothing', { timeout: 120_000 }, async (t) => {
  const alice = await createUser(server, 'Alice', { repos: ['acme/*'] });
  const { session } = await createSession(server, alice, { title: 'Untrusted page' });
  const ext = await launchWithExtension();
  t.after(() => ext.close());
  await ext.serviceWorker.evaluate((p) => chrome.storage.local.set(p), {
    coordinatorUrl: server.url, apiKey: alice.key, sessionId: session.id, sessionTitle: 'Untrusted page',
  });
  const page = collectPageErrors(await ext.context.newPage());
  await page.goto(pageUrl);
  await page.bringToFront();
  await ext.serviceWorker.evaluate(async (u) => {
    const [tab] = await chrome.tabs.query({ url: u });
    return self.startSelection(tab.id);
  }, pageUrl);
  await page.locator('[data-session-selection="overlay"]').waitFor();

  // The page's own scripts: they cannot see into the overlay, and what they make up is ignored.
  const seen = await page.evaluate(() => {
    const host = document.querySelector('[data-session-selection="overlay"]');
    window.dispatchEvent(new KeyboardEvent('keydown', { key: 'Escape', bubbles: true }));
    for (const type of ['pointerdown', 'pointermove', 'pointerup']) {
      host.dispatchEvent(new PointerEvent(type, { clientX: 15, clientY: 95, button: 0, bubbles: true, composed: true }));
    }
    // The collector lives in the page's world, so the page can replace it: it lies about where it is.
    const real = globalThis.SessionSelection;
    globalThis.SessionSelection = {
      collectSelection: (rect) => ({ ...real.collectSelection(rect), url: 'https://bank.example/login', title: 'Your bank' }),
    };
    return { shadowRoot: host.shadowRoot, children: host.childNodes.length };
  });
  assert.deepEqual(seen, { shadowRoot: null, children: 0 }, 'the overlay\u2019s shadow root is closed');
  assert.equal(await page.locator('[data-session-selection="overlay"]').count(), 1, 'a made-up Escape did not cancel');
  const before = await api.get(`/v1/sessions/${session.id}/artifacts`, { key: alice.key });
  assert.equal(before.json.artifacts.length, 0, 'made-up pointer events sent nothing');

  // A real drag sends the selection, with the tab's own address and title.
  await page.mouse.move(AROUND_REVENUE.x, AROUND_REVENUE.y);
  await page.mouse.down();
  await page.mouse.move(AROUND_REVENUE.x + AROUND_REVENUE.width, AROUND_REVENUE.y + AROUND_REVENUE.height, { steps: 4 });
  await page.mouse.up();
  assert.match(await notice(page), /^Sent 4 elements/);
  const toastRoot = await page.evaluate(() => document.querySelector('[data-session-selection="toast"]')?.shadowRoot);
  assert.equal(toastRoot, null, 'the notice\u2019s shadow root is closed');
  const artifacts = await api.get(`/v1/sessions/${session.id}/artifacts`, { key: alice.key });
  assert.equal(artifacts.json.artifacts.length, 1);
  assert.equal(artifacts.json.artifacts[0].data.url, pageUrl);
  assert.equal(artifacts.json.artifacts[0].data.title, 'Revenue dashboard');
  assert.deepEqual(page.errors, []);
});
