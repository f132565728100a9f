// The web client (public/) in headless Chromium against the Worker: signing in, two people in
// one session, reloads that neither duplicate nor drop a line, error frames, removal and
// archiving, the rendering of agent events, and the layout at desktop and phone widths.
//
// Slow-ish (a browser plus wrangler dev); every page is driven through what a person sees.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  addMember,
  allEvents,
  createSession,
  createUser,
  range,
  roomOfTwo,
  useServer,
} from './support/server.mjs';
import {
  collectPageErrors,
  launchBrowser,
  openSession,
  screenshot,
  shownSeqs,
  signInContext,
} from './support/browser.mjs';

let server;
let http;
useServer({
  // The busy-session test posts 140 selections from one user; selections count like prompts.
  vars: { LIMITS: JSON.stringify({ prompts_per_window: 200 }) },
  setup: async (s, h) => {
    server = s;
    http = h;
  },
});

let chrome;
before(async () => {
  chrome = await launchBrowser();
});
after(async () => {
  await chrome?.close();
});

/** A fresh browser context (closed at the end of the test) signed in as `user`, or not. */
async function contextFor(t, user, viewport = { width: 1280, height: 800 }) {
  const context = await chrome.browser.newContext({ viewport });
  t.after(() => context.close().catch(() => {}));
  if (user) await signInContext(context, user.key);
  return context;
}

// A stored prompt (it has a seq), not the “sending…” copy shown until the coordinator takes it.
const messageEntry = (page, content) => page.locator('.timeline .entry.message[data-seq]', { hasText: content });

async function selection(user, sid, title, i = 0) {
  const res = await http.post(`/v1/sessions/${sid}/selections`, {
    key: user.key,
    body: {
      url: `https://app.example.com/page/${i}`,
      title,
      note: `note ${i}`,
      viewport: { width: 1280, height: 800 },
      elements: [{ tag: 'div', id: `card-${i}`, classes: ['card'], text: `Card ${i}`, rect: { x: 0, y: 0, width: 10, height: 10 }, selector: `#card-${i}` }],
    },
  });
  assert.equal(res.status, 201, res.text);
  return res.json.artifact_id;
}

test('the page is served at / and the API still reaches the Worker', async () => {
  const root = await http.get('/');
  assert.equal(root.status, 200);
  assert.match(root.headers.get('content-type'), /text\/html/);
  assert.match(root.text, /<script type="module" src="\/js\/main.js">/);
  const health = await http.get('/health');
  assert.equal(health.json.status, 'healthy');
  const unknown = await http.get('/no-such-page');
  assert.equal(unknown.status, 404);
  assert.equal(unknown.json.error.code, 'not_found');
  const me = await http.get('/v1/me');
  assert.equal(me.status, 401);
});

test('two people in one session see each prompt with its author, who is online and who is typing', { timeout: 120_000 }, async (t) => {
  const { alice, bob, sid } = await roomOfTwo(server, 'Pairing on the dashboard');

  // Alice signs in through the form and opens the session from her list.
  const aliceContext = await contextFor(t, null);
  const alicePage = collectPageErrors(await aliceContext.newPage());
  await alicePage.goto(server.url);
  await alicePage.getByLabel('Your API key').fill(alice.key);
  await alicePage.getByRole('button', { name: 'Sign in' }).click();
  await alicePage.locator('#my-user-id', { hasText: alice.id }).waitFor();
  await alicePage.getByRole('link', { name: /Pairing on the dashboard/ }).click();
  await alicePage.locator('.conn-live').waitFor();
  assert.match(alicePage.url(), new RegExp(`#/s/${sid}$`));
  assert.equal(await alicePage.evaluate(() => document.body.textContent.includes(localStorage.getItem('coordinator.apiKey'))), false,
    'the API key is never shown');

  const bobPage = await openSession(await contextFor(t, bob), server, sid);

  // Presence: each sees the other online.
  await alicePage.locator('.people li', { hasText: 'Bob' }).waitFor();
  await bobPage.locator('.people li', { hasText: 'Alice' }).waitFor();

  // Typing shows on the other page.
  const aliceInput = alicePage.getByLabel('Prompt', { exact: true });
  await aliceInput.click();
  await alicePage.keyboard.type('Add a dark mode');
  await bobPage.locator('.typing-line', { hasText: 'Alice is typing…' }).waitFor();
  assert.equal(await alicePage.locator('.typing-line').textContent(), '', 'nobody sees their own typing');

  // Shift+Enter adds a line, Enter sends.
  await alicePage.keyboard.press('Shift+Enter');
  await alicePage.keyboard.type('with a toggle in the header');
  await alicePage.keyboard.press('Enter');
  const content = 'Add a dark mode\nwith a toggle in the header';
  for (const page of [alicePage, bobPage]) {
    const entry = messageEntry(page, 'with a toggle in the header');
    await entry.waitFor();
    assert.equal(await entry.locator('.content').textContent(), content);
    assert.equal(await entry.locator('.author').textContent(), 'Alice');
    assert.equal(await entry.locator('.chip', { hasText: 'queued' }).count(), 1);
  }
  assert.equal(await aliceInput.inputValue(), '', 'the composer is cleared after sending');
  assert.equal(await messageEntry(alicePage, 'dark mode').locator('.author.me').count(), 1, 'Alice sees her own prompt as hers');
  assert.equal(await messageEntry(bobPage, 'dark mode').locator('.author.me').count(), 0);
  await bobPage.waitForFunction(() => document.querySelector('.typing-line').textContent === '');

  // Bob answers with the Send button; both see it with his name, and the queue on both pages.
  await bobPage.getByLabel('Prompt', { exact: true }).fill('And check the contrast of the chart colours');
  await bobPage.getByRole('button', { name: 'Send', exact: true }).click();
  for (const page of [alicePage, bobPage]) {
    await messageEntry(page, 'contrast of the chart').locator('.author', { hasText: 'Bob' }).waitFor();
    await page.locator('.queue li').nth(1).waitFor();
    assert.deepEqual(await page.locator('.queue li .chip').allTextContents(), ['#1', '#2']);
  }

  // Bob cancels his queued prompt; both pages show it and the queue shrinks.
  await bobPage.getByRole('button', { name: /Cancel “And check the contrast/ }).click();
  for (const page of [alicePage, bobPage]) {
    await page.locator('.timeline .entry.system', { hasText: 'Prompt cancelled' }).waitFor();
    await messageEntry(page, 'contrast of the chart').locator('.chip', { hasText: 'cancelled' }).waitFor();
    await page.locator('.queue li').nth(1).waitFor({ state: 'detached' });
  }

  // The timeline holds every stored event once, in order, on both pages.
  const stored = await allEvents(server, alice, sid);
  for (const page of [alicePage, bobPage]) {
    assert.deepEqual(await shownSeqs(page), stored.map((e) => e.seq));
    assert.deepEqual(page.errors, []);
  }
});

test('reloading while events stream in shows every seq exactly once, in order', { timeout: 180_000 }, async (t) => {
  const { alice, bob, sid } = await roomOfTwo(server, 'Busy session');
  const page = await openSession(await contextFor(t, alice), server, sid);

  // Bob keeps posting selections over HTTP while Alice's page reloads twice.
  const total = 140;
  let posted = 0;
  const reloadAt = new Set([30, 75]);
  const reloads = [];
  const stream = (async () => {
    for (let i = 1; i <= total; i++) {
      await selection(bob, sid, `Selection ${i}`, i);
      posted = i;
      if (reloadAt.has(i)) reloads.push(page.reload().then(() => page.locator('.conn-live').waitFor()));
    }
  })();
  await stream;
  await Promise.all(reloads);
  assert.equal(posted, total);

  const last = (await allEvents(server, alice, sid)).at(-1).seq;
  // What the page holds now runs without gaps or duplicates up to the last event…
  await page.waitForFunction((n) => {
    const seqs = [...document.querySelectorAll('.timeline [data-seq]')].map((el) => Number(el.dataset.seq));
    return seqs.at(-1) === n;
  }, last);
  const shown = await shownSeqs(page);
  assert.deepEqual(shown, range(shown[0], last));

  // …and scrolling up loads the earlier part until the first event.
  while ((await shownSeqs(page))[0] !== 1) {
    const first = (await shownSeqs(page))[0];
    await page.locator('.timeline-scroll').evaluate((el) => el.scrollTo(0, 0));
    await page.waitForFunction((f) => Number(document.querySelector('.timeline [data-seq]')?.dataset.seq) < f, first);
  }
  assert.deepEqual(await shownSeqs(page), range(1, last));
  assert.equal(await page.evaluate((s) => sessionStorage.getItem(`coordinator.lastSeq.${s}`), sid), String(last));
  assert.deepEqual(page.errors, []);

  // A page opened fresh (no stored seq) starts from the last page and reaches back the same way.
  const fresh = await openSession(await contextFor(t, bob), server, sid);
  await fresh.waitForFunction((n) => [...document.querySelectorAll('.timeline [data-seq]')].some((el) => Number(el.dataset.seq) === n), last);
  // Clicked without scrolling it into view first: scrolling to the top loads the earlier
  // events by itself, and the button, with nothing left to load, would be gone before the click.
  await fresh.getByRole('button', { name: 'Load earlier events' }).dispatchEvent('click');
  await fresh.waitForFunction(() => Number(document.querySelector('.timeline [data-seq]')?.dataset.seq) === 1);
  assert.deepEqual(await shownSeqs(fresh), range(1, last));
});

test('a dropped connection and an expired token reconnect with since, showing the missed events once', { timeout: 120_000 }, async (t) => {
  const { alice, bob, sid } = await roomOfTwo(server, 'Flaky network');
  const context = await contextFor(t, alice);
  // Every socket of the page goes through here, so the test can drop it like a network would.
  const sockets = [];
  await context.routeWebSocket(/\/ws\?/, (ws) => {
    const upstream = ws.connectToServer();
    sockets.push({ ws, upstream, since: Number(new URL(ws.url()).searchParams.get('since')) });
  });
  let tokenRequests = 0;
  context.on('request', (req) => {
    if (req.method() === 'POST' && req.url().endsWith('/tickets')) tokenRequests += 1;
  });
  const page = await openSession(context, server, sid);
  await page.evaluate(() => {
    window.connStates = [];
    const badge = document.querySelector('.conn');
    new MutationObserver(() => window.connStates.push(badge.textContent)).observe(badge, { childList: true, characterData: true, subtree: true });
  });
  const lastShown = async () => (await shownSeqs(page)).at(-1);
  const waitShown = (seq) => page.waitForFunction((n) => [...document.querySelectorAll('.timeline [data-seq]')].some((el) => Number(el.dataset.seq) === n), seq);

  for (let i = 1; i <= 3; i++) await selection(bob, sid, `Before the drop ${i}`, i);
  let last = (await allEvents(server, alice, sid)).at(-1).seq;
  await waitShown(last);

  // The network drops; events happen meanwhile; the page comes back with since=<last seen>.
  const seenBeforeDrop = await lastShown();
  await sockets.at(-1).ws.close({ code: 1012, reason: 'network went away' });
  for (let i = 4; i <= 8; i++) await selection(bob, sid, `During the drop ${i}`, i);
  last = (await allEvents(server, alice, sid)).at(-1).seq;
  await waitShown(last);
  await page.locator('.conn-live').waitFor();
  assert.equal(sockets.length, 2);
  assert.equal(sockets[1].since, seenBeforeDrop, 'the new socket asks for what came after the last seq shown');
  assert.ok((await page.evaluate(() => window.connStates)).some((s) => /^Reconnecting in \d+ s$/.test(s)), 'the page said it was reconnecting');

  // A close with 4001 (token expired) gets a fresh token and reconnects.
  const tokensBefore = tokenRequests;
  await sockets.at(-1).ws.close({ code: 4001, reason: 'token expired' });
  await selection(bob, sid, 'After the new token', 9);
  last = (await allEvents(server, alice, sid)).at(-1).seq;
  await waitShown(last);
  await page.locator('.conn-live').waitFor();
  assert.equal(sockets.length, 3);
  assert.ok(tokenRequests > tokensBefore, 'a new connect ticket was asked for');

  assert.deepEqual(await shownSeqs(page), range(1, last));
  // No token ever appears in the page.
  assert.doesNotMatch(await page.locator('body').textContent(), /v1\.[A-Za-z0-9_-]{20,}/);
  assert.deepEqual(page.errors, []);
});

test('presence deltas show who joined, who is typing until it runs out, and who left', { timeout: 60_000 }, async (t) => {
  // The room sends one full frame at join, then deltas; the page is checked against that shape
  // by adding frames of its own to a real socket.
  const { alice, bob, sid } = await roomOfTwo(server, 'Deltas');
  const context = await contextFor(t, alice);
  let route = null;
  await context.routeWebSocket(/\/ws\?/, (ws) => {
    ws.connectToServer();
    route = ws;
  });
  const page = await openSession(context, server, sid);
  const carol = { id: 'par_carol', user_id: 'usr_carol', name: 'Carol' };
  const delta = (change, extra = {}) => route.send(JSON.stringify({ type: 'presence_delta', changes: [{ change, participant: carol, ...extra }] }));
  const typingLine = page.locator('.typing-line');

  delta('joined');
  await page.locator('.people li', { hasText: 'Carol' }).waitFor();
  assert.equal(await page.locator('summary', { hasText: 'People' }).locator('.count').textContent(), '(2 online)');

  // Typing shows for expires_in_ms, then goes without another frame.
  delta('typing', { expires_in_ms: 1500 });
  await typingLine.filter({ hasText: 'Carol is typing…' }).waitFor();
  const shownAt = Date.now();
  await page.waitForFunction(() => document.querySelector('.typing-line').textContent === '', null, { timeout: 5_000 });
  assert.ok(Date.now() - shownAt > 800, 'typing stayed until it ran out');

  // A later typing renews it; idle (the prompt was sent) ends it at once.
  delta('typing', { expires_in_ms: 30_000 });
  await typingLine.filter({ hasText: 'Carol is typing…' }).waitFor();
  delta('idle');
  await page.waitForFunction(() => document.querySelector('.typing-line').textContent === '', null, { timeout: 2_000 });

  // Bob arrives: the room tells Alice's page with a delta, and Carol stays.
  const bobPage = await openSession(await contextFor(t, bob), server, sid);
  await page.locator('.people li', { hasText: 'Bob' }).waitFor();
  await page.locator('.people li', { hasText: 'Carol' }).waitFor();
  // A full presence frame replaces the view: Carol was never real.
  const detail = await http.get(`/v1/sessions/${sid}`, { key: alice.key });
  const online = detail.json.participants.filter((p) => p.online).map(({ id, user_id, name }) => ({ id, user_id, name }));
  route.send(JSON.stringify({ type: 'presence', online, typing: [] }));
  await page.locator('.people li', { hasText: 'Carol' }).waitFor({ state: 'detached' });
  await page.locator('.people li', { hasText: 'Bob' }).waitFor();
  delta('joined');
  await page.locator('.people li', { hasText: 'Carol' }).waitFor();
  delta('left');
  await page.locator('.people li', { hasText: 'Carol' }).waitFor({ state: 'detached' });
  await page.locator('.people li', { hasText: 'Bob' }).waitFor();
  assert.deepEqual(page.errors, []);
  assert.deepEqual(bobPage.errors, []);
});

test('an error frame is shown to the user and the page keeps working', { timeout: 120_000 }, async (t) => {
  const { alice, sid } = await roomOfTwo(server, 'Errors');
  const page = await openSession(await contextFor(t, alice), server, sid);
  const input = page.getByLabel('Prompt', { exact: true });

  // Over the 64 KiB prompt limit (but under the frame limit): the coordinator answers too_large.
  const huge = `${'x'.repeat(70 * 1024)} the end`;
  await input.fill(huge);
  await input.press('Enter');
  const banner = page.getByRole('alert').filter({ hasText: 'Too large to send' });
  await banner.waitFor();
  assert.match(await banner.textContent(), /64 KiB|65536|bytes|limit/i, 'the coordinator’s own words say what the limit is');
  assert.equal(await input.inputValue(), huge, 'the refused text is given back to fix');
  assert.equal(await page.locator('.timeline .entry.message').count(), 0);
  assert.equal(await page.locator('.conn-live').count(), 1, 'the connection stays up');

  // The next prompt goes through and the message disappears.
  await input.fill('A prompt of a sensible size');
  await input.press('Enter');
  await messageEntry(page, 'A prompt of a sensible size').waitFor();
  await banner.waitFor({ state: 'hidden' });
  assert.equal(await page.locator('.timeline .entry.message').count(), 1);

  // Every error code of the protocol has its own sentence.
  const sentences = await page.evaluate(async () => {
    const { describeError } = await import('/js/messages.js');
    const codes = ['invalid_json', 'unknown_type', 'invalid_field', 'too_large', 'rate_limited', 'queue_full', 'not_found', 'forbidden',
      'unauthorized', 'conflict', 'gone', 'method_not_allowed', 'provider_error', 'unavailable', 'internal'];
    return codes.map((code) => [code, describeError({ code, message: '' })]);
  });
  for (const [code, sentence] of sentences) assert.doesNotMatch(sentence, /^Error \(/, `${code} has no sentence`);
  assert.deepEqual(page.errors, []);
});

test('a removed member and an archived session get read-only pages that say why', { timeout: 120_000 }, async (t) => {
  const { alice, bob, sid } = await roomOfTwo(server, 'Closing');
  const alicePage = await openSession(await contextFor(t, alice), server, sid);
  const bobPage = await openSession(await contextFor(t, bob), server, sid);
  await alicePage.getByLabel('Prompt', { exact: true }).fill('Queued before the archive');
  await alicePage.getByLabel('Prompt', { exact: true }).press('Enter');
  await messageEntry(bobPage, 'Queued before the archive').waitFor();

  // Removed (close 4003): Bob's page stops and says so.
  const removed = await http.del(`/v1/sessions/${sid}/members/${bob.id}`, { key: alice.key });
  assert.equal(removed.status, 200, removed.text);
  await bobPage.locator('.readonly-note', { hasText: 'no longer a member' }).waitFor();
  await bobPage.locator('.conn-closed').waitFor();
  assert.equal(await bobPage.locator('.composer').isVisible(), false);

  // Archived (close 4009): Alice's page becomes read-only and keeps the history.
  const archived = await http.del(`/v1/sessions/${sid}`, { key: alice.key });
  assert.equal(archived.status, 200, archived.text);
  await alicePage.locator('.readonly-note', { hasText: 'archived' }).waitFor();
  await alicePage.locator('.timeline .entry.system', { hasText: 'Prompt cancelled: the session was archived' }).waitFor();
  assert.equal(await alicePage.locator('.composer').isVisible(), false);

  // Opening the archived session later shows everything, read-only.
  const later = collectPageErrors(await (await contextFor(t, alice)).newPage());
  await later.goto(`${server.url}/#/s/${sid}`);
  await later.locator('.readonly-note', { hasText: 'archived' }).waitFor();
  const stored = await allEvents(server, alice, sid);
  await later.waitForFunction((n) => document.querySelectorAll('.timeline [data-seq]').length === n, stored.length);
  assert.deepEqual(await shownSeqs(later), stored.map((e) => e.seq));
  assert.deepEqual(later.errors, []);
});

test('sessions are listed, started from a repo and shared by user id', { timeout: 120_000 }, async (t) => {
  const owner = await createUser(server, 'Olivia', { repos: ['acme/*'] });
  const guest = await createUser(server, 'Gustav', { repos: ['acme/*'] });
  const page = collectPageErrors(await (await contextFor(t, owner)).newPage());
  await page.goto(server.url);
  await page.getByText('No sessions yet').waitFor();
  await page.getByLabel('Repository').selectOption('acme/web');
  await page.getByLabel('Title').fill('Checkout flow');
  await page.getByLabel('First prompt (optional)').fill('Make the checkout button bigger');
  await page.getByRole('button', { name: 'Start session' }).click();
  await page.locator('.conn-live').waitFor();
  const sid = decodeURIComponent(page.url().split('#/s/')[1]);
  await messageEntry(page, 'Make the checkout button bigger').waitFor();
  assert.equal(await page.locator('.session-name').textContent(), 'Checkout flow');

  // Share with Gustav by his user id; he then finds the session in his list.
  await page.getByText('Share', { exact: true }).click();
  await page.getByLabel('Add a member by user id').fill(guest.id);
  await page.getByRole('button', { name: 'Add', exact: true }).click();
  await page.getByText('Added: they can open this session now.').waitFor();
  await page.getByLabel('Add a member by user id').fill('usr_nobody');
  await page.getByRole('button', { name: 'Add', exact: true }).click();
  await page.locator('.share .form-status', { hasText: /not found|no such|does not exist/i }).waitFor();

  const guestPage = await (await contextFor(t, guest)).newPage();
  await guestPage.goto(server.url);
  await guestPage.getByRole('link', { name: /Checkout flow/ }).click();
  await guestPage.locator('.conn-live').waitFor();
  assert.match(guestPage.url(), new RegExp(`#/s/${sid}$`));
  assert.equal(await guestPage.locator('.share').isVisible(), false, 'only the owner shares');

  // Paging: more sessions than one page shows a "Load more" button that brings the rest.
  for (let i = 0; i < 21; i++) await createSession(server, owner, { title: `Extra ${i}` });
  await page.goto(`${server.url}/#/`);
  await page.locator('.session-list li').nth(19).waitFor();
  await page.getByRole('button', { name: 'Load more' }).click();
  await page.locator('.session-list li').nth(21).waitFor();
  assert.equal(await page.locator('.session-list li').count(), 22);
  assert.deepEqual(page.errors, []);
});

/** Agent events as PROTOCOL.md section 2 describes them, for rendering without a sandbox. */
function agentEvents(messageId) {
  const ts = new Date().toISOString();
  const author = { id: 'par_alice', name: 'Alice <b>' };
  return [
    { seq: 1, ts, type: 'participant_joined', participant: { id: 'par_alice', user_id: 'usr_a', name: 'Alice <b>' } },
    { seq: 2, ts, type: 'message', message_id: messageId, content: 'Fix the card <img src=x onerror="window.pwned=1">', author, source: 'web', attachments: [], selection_ids: [] },
    { seq: 3, ts, type: 'sandbox_status', status: 'spawning' },
    { seq: 4, ts, type: 'sandbox_status', status: 'ready' },
    { seq: 5, ts, type: 'prompt_started', message_id: messageId },
    { seq: 6, ts, type: 'token', message_id: messageId, delta: 'Looking at the card' },
    { seq: 7, ts, type: 'tool_call', message_id: messageId, call_id: 'c1', tool: 'bash', status: 'running', input: { command: 'rg -n RevenueCard src' } },
    { seq: 8, ts, type: 'token', message_id: messageId, delta: ' component <script>window.pwned=2</script>' },
    { seq: 9, ts, type: 'tool_call', message_id: messageId, call_id: 'c1', tool: 'bash', status: 'completed', output: 'src/Card.tsx:3:export function RevenueCard()' },
    { seq: 10, ts, type: 'file_edit', message_id: messageId, path: 'src/Card.tsx', diff: '--- a/src/Card.tsx\n+++ b/src/Card.tsx\n@@ -1,2 +1,2 @@\n-  width: 400px;\n+  max-width: 100%;' },
    { seq: 11, ts, type: 'token', message_id: messageId, delta: '. Done: the card now wraps.' },
    { seq: 12, ts, type: 'artifact_created', artifact: { id: 'art_pr', type: 'pr', created_at: ts, message_id: messageId, data: { url: 'javascript:window.pwned=3', title: 'Wrap the revenue card' } } },
    { seq: 13, ts, type: 'prompt_finished', message_id: messageId, status: 'completed' },
    { seq: 14, ts, type: 'session_error', code: 'provider_error', message: 'the provider could not create a sandbox' },
    { seq: 15, ts, type: 'brand_new_event', whatever: { nested: true } },
    { seq: 16, ts, type: 'tool_call', message_id: messageId, call_id: 'c2', tool: 'edit', status: 'error', output: 'permission denied' },
  ];
}

test('prompts from Slack say so and link to their thread, only by https', { timeout: 60_000 }, async (t) => {
  const page = collectPageErrors(await (await contextFor(t, null)).newPage());
  await page.goto(server.url);
  const ts = new Date().toISOString();
  const author = { id: 'par_ada', name: 'Ada' };
  const message = (seq, attachments) => ({ seq, ts, type: 'message', message_id: `msg_${seq}`, content: 'fix it', author, source: 'slack', attachments, selection_ids: [] });
  const events = [
    message(1, [{ type: 'slack_thread', channel: 'C1', thread_ts: '1.2', permalink: 'https://acme.slack.com/archives/C1/p12' }]),
    message(2, [{ type: 'slack_thread', channel: 'C1', thread_ts: '1.2', permalink: 'javascript:window.pwned=1' }]),
    message(3, []),
  ];
  const chips = await page.evaluate(async (all) => {
    const { Timeline } = await import('/js/timeline.js');
    document.body.replaceChildren();
    const list = document.createElement('ol');
    list.className = 'timeline';
    document.body.append(list);
    const timeline = new Timeline(list, { me: () => null, statusOf: () => 'queued', isAttached: () => false, toggleAttach() {}, announce() {} });
    for (const event of all) timeline.add(event);
    timeline.flush();
    return [...list.querySelectorAll('.chip.slack')].map((el) => [el.tagName, el.getAttribute('href'), el.textContent]);
  }, events);
  assert.deepEqual(chips, [
    ['A', 'https://acme.slack.com/archives/C1/p12', 'from Slack'],
    ['SPAN', null, 'from Slack'],
    ['SPAN', null, 'from Slack'],
  ]);
  assert.deepEqual(page.errors, []);
});

test('agent output renders from protocol events: streamed text, tool calls, edits, finishes, errors, unknown types', { timeout: 60_000 }, async (t) => {
  const page = collectPageErrors(await (await contextFor(t, null)).newPage());
  await page.goto(server.url);
  const events = agentEvents('msg_1');
  const result = await page.evaluate(async (all) => {
    const { Timeline } = await import('/js/timeline.js');
    const { EventLog } = await import('/js/state/events.js');
    const { PromptQueue } = await import('/js/state/prompts.js');
    document.body.replaceChildren();
    const list = document.createElement('ol');
    list.className = 'timeline';
    document.body.append(list);
    const log = new EventLog();
    const prompts = new PromptQueue();
    const timeline = new Timeline(list, { me: () => ({ id: 'par_alice' }), statusOf: (id) => prompts.statusOf(id), isAttached: () => false, toggleAttach() {}, announce() {} });
    // Out of order and twice, as history pages and replays can deliver them: the newer half
    // first, then the older half, then everything again; the log passes on each seq once.
    for (const page of [all.slice(8), all.slice(0, 8), all, [{ type: 'token' }]]) {
      for (const event of log.history(page)) {
        prompts.apply(event);
        timeline.add(event);
      }
    }
    timeline.flush();
    const block = list.querySelector('.entry.agent');
    return {
      seqs: [...list.querySelectorAll('[data-seq]')].map((el) => Number(el.dataset.seq)),
      agentText: [...block.querySelectorAll('.answer')].map((el) => el.textContent),
      toolSummary: [...block.querySelectorAll('details.tool > summary')].map((el) => el.textContent),
      toolUpdates: block.querySelectorAll('details.tool')[0].querySelectorAll('.tool-update').length,
      diffAdded: block.querySelector('.file-edit pre.diff .d-add')?.textContent,
      finished: block.querySelector('.finished')?.textContent,
      blockStatus: block.querySelector('.meta .chip')?.textContent,
      promptStatus: list.querySelector('.entry.message .chip')?.textContent,
      errorLine: list.querySelector('.system-error')?.textContent,
      unknownLine: list.querySelector('.system-unknown')?.textContent,
      prLink: list.querySelector('.artifact-pr a') !== null,
      injected: list.querySelectorAll('img, script, b').length,
      pwned: window.pwned ?? null,
    };
  }, events);
  // Every seq once; the agent's parts grouped in its block in seq order.
  assert.deepEqual([...result.seqs].sort((a, b) => a - b), range(1, 16));
  assert.equal(new Set(result.seqs).size, 16);
  // The text between tool calls is one answer each, rendered as Markdown (markup in it is text).
  assert.deepEqual(result.agentText, ['Looking at the card', 'component <script>window.pwned=2</script>', '. Done: the card now wraps.']);
  assert.deepEqual(result.toolSummary.map((s) => s.replace(/\s+/g, ' ').trim()), ['Tool bash completed', 'Tool edit error']);
  assert.equal(result.toolUpdates, 2, 'both updates of call c1 are in one tool entry');
  assert.equal(result.diffAdded, '+  max-width: 100%;');
  assert.match(result.finished, /Prompt completed/);
  assert.equal(result.blockStatus, 'completed');
  assert.equal(result.promptStatus, 'completed');
  assert.match(result.errorLine, /^The sandbox could not be started or reached: the provider could not create a sandbox/);
  assert.match(result.unknownLine, /brand_new_event/);
  assert.equal(result.prLink, false, 'a javascript: URL is not made a link');
  assert.equal(result.injected, 0, 'event content never becomes markup');
  assert.equal(result.pwned, null);
  assert.deepEqual(page.errors, []);
});

test('the session view fits desktop and phone widths and works by keyboard', { timeout: 120_000 }, async (t) => {
  const { alice, bob, sid } = await roomOfTwo(server, 'Revenue card overflows on mobile');
  await http.post(`/v1/sessions/${sid}/prompts`, { key: alice.key, body: { content: 'The revenue card overflows on phones. Can you make it wrap?' } });
  const artifact = await selection(bob, sid, 'Revenue dashboard', 1);
  await http.post(`/v1/sessions/${sid}/prompts`, {
    key: bob.key,
    body: { content: 'Here is the card I mean; keep the chart as it is.', selection_ids: [artifact] },
  });
  const bobPage = await openSession(await contextFor(t, bob), server, sid);

  for (const [name, viewport] of [['desktop', { width: 1280, height: 800 }], ['phone', { width: 390, height: 844 }]]) {
    const page = await openSession(await contextFor(t, alice, viewport), server, sid);
    await page.locator('.artifact').waitFor();
    await bobPage.getByLabel('Prompt', { exact: true }).pressSequentially('Looking');
    await page.locator('.typing-line', { hasText: 'Bob is typing' }).waitFor();
    const layout = await page.evaluate(() => {
      const composer = document.querySelector('.composer').getBoundingClientRect();
      const scroller = document.querySelector('.timeline-scroll').getBoundingClientRect();
      return {
        overflowX: document.documentElement.scrollWidth - window.innerWidth,
        composerInView: composer.bottom <= window.innerHeight + 1 && composer.top >= 0,
        timelineHeight: scroller.height,
      };
    });
    assert.ok(layout.overflowX <= 0, `${name}: no sideways scrolling (${layout.overflowX}px too wide)`);
    assert.ok(layout.composerInView, `${name}: the composer is on screen`);
    assert.ok(layout.timelineHeight > 200, `${name}: the timeline has room (${layout.timelineHeight}px)`);
    await screenshot(page, `session-${name}`);

    // Keyboard: attach the selection with Enter on its button, write, send with Enter.
    await page.getByRole('button', { name: 'Attach to next prompt' }).focus();
    await page.keyboard.press('Enter');
    await page.locator('.composer .attached li', { hasText: 'Revenue dashboard' }).waitFor();
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'prompt-input', 'attaching moves focus to the prompt');
    await page.keyboard.type(`From the ${name} page`);
    await page.keyboard.press('Enter');
    await messageEntry(page, `From the ${name} page`).locator('.selection-ref', { hasText: 'Revenue dashboard' }).waitFor();
    assert.deepEqual(page.errors, []);
  }
  const messages = (await allEvents(server, alice, sid)).filter((e) => e.type === 'message');
  assert.deepEqual(messages.at(-1).selection_ids, [artifact]);
  assert.equal(messages.at(-1).source, 'web');
});

test('agent rendering screenshots at desktop and phone widths', { timeout: 60_000 }, async (t) => {
  for (const [name, viewport] of [['desktop', { width: 1280, height: 800 }], ['phone', { width: 390, height: 844 }]]) {
    const page = collectPageErrors(await (await contextFor(t, null, viewport)).newPage());
    await page.goto(server.url);
    await page.evaluate(async (all) => {
      const { Timeline } = await import('/js/timeline.js');
      const { PromptQueue } = await import('/js/state/prompts.js');
      const list = document.createElement('ol');
      list.className = 'timeline';
      const scroller = document.createElement('div');
      scroller.className = 'timeline-scroll';
      scroller.append(list);
      document.body.replaceChildren(scroller);
      const prompts = new PromptQueue();
      const timeline = new Timeline(list, { me: () => ({ id: 'par_alice' }), statusOf: (id) => prompts.statusOf(id), isAttached: () => false, toggleAttach() {}, announce() {} });
      for (const event of all) {
        prompts.apply(event);
        timeline.add(event);
      }
      timeline.flush();
      for (const details of list.querySelectorAll('details')) details.open = true;
    }, agentEvents('msg_1'));
    const overflowX = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflowX <= 0, `${name}: no sideways scrolling (${overflowX}px too wide)`);
    await screenshot(page, `agent-${name}`, { fullPage: true });
    assert.deepEqual(page.errors, []);
  }
});

test('a URL shared with someone who is not a member says so', { timeout: 60_000 }, async (t) => {
  const owner = await createUser(server, 'Nora', { repos: ['acme/*'] });
  const stranger = await createUser(server, 'Sam', { repos: ['acme/*'] });
  const { session } = await createSession(server, owner, { title: 'Private' });
  const page = collectPageErrors(await (await contextFor(t, stranger)).newPage());
  await page.goto(`${server.url}/#/s/${session.id}`);
  await page.locator('.readonly-note', { hasText: 'not one of its members' }).waitFor();
  await addMember(server, owner, session.id, stranger);
  await page.reload();
  await page.locator('.conn-live').waitFor();
  // A key that stops working sends the page back to the sign-in form.
  await page.evaluate(() => localStorage.setItem('coordinator.apiKey', 'sk_not_a_key'));
  await page.reload();
  await page.getByText('Your API key is no longer accepted').waitFor();
  await page.getByLabel('Your API key').waitFor();
  assert.equal(await page.evaluate(() => localStorage.getItem('coordinator.apiKey')), null);
});
