// The web page with a real sandbox behind the session: the local provider and `bridge run`
// with the `dev` agent. Two people see the agent's streamed answer, its tool call and its
// file edit; a reload mid-stream shows every line once; Stop ends a running prompt. Then an
// answer in Markdown, streamed by the test itself dialled in as the sandbox (the model is what
// writes an answer, and the test stands in for it), rendered safely.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { allEvents, freePort, roomOfTwo, sleep, startServer, useServer } from './support/server.mjs';
import { launchBrowser, openSession, screenshot, shownSeqs, signInContext } from './support/browser.mjs';
import { dialBridge, nthCreate, startLocalProvider, startRecordingProvider } from './support/sandbox.mjs';

const secret = randomBytes(24).toString('base64url');
const providerPort = await freePort();
let provider;
const ctx = useServer({
  vars: { PROVIDER: 'local', PROVIDER_URL: `http://127.0.0.1:${providerPort}`, PROVIDER_SECRET: secret },
});

let chrome;
before(async () => {
  // Slow enough that a reload lands mid-stream.
  provider = await startLocalProvider({ port: providerPort, secret, env: { DEV_AGENT_DELAY_MS: '40' } });
  chrome = await launchBrowser();
});
after(async () => {
  await chrome?.close();
  await provider?.stop();
});

async function pageFor(t, user, sid, viewport = { width: 1280, height: 800 }, server = ctx.server) {
  const context = await chrome.browser.newContext({ viewport });
  t.after(() => context.close().catch(() => {}));
  await signInContext(context, user.key);
  return openSession(context, server, sid);
}

const agentBlock = (page) => page.locator('.timeline .entry.agent').last();
/** The answer text a page shows for the last agent block (line breaks as white space). */
const answerText = (page) => agentBlock(page).locator('.answer').evaluateAll((els) => els.map((e) => e.innerText).join(' '));
const folded = (text) => text.replace(/\s+/g, ' ').trim();

test("both people see the agent's streamed answer, tool call and file edit", { timeout: 180_000 }, async (t) => {
  const { alice, bob, sid } = await roomOfTwo(ctx.server, 'Agent at work');
  const alicePage = await pageFor(t, alice, sid);
  const bobPage = await pageFor(t, bob, sid);

  const input = alicePage.getByLabel('Prompt', { exact: true });
  await input.fill('Tidy the notes\n$ ls -a\nwrite notes.md: tidy');
  await input.press('Enter');

  for (const page of [alicePage, bobPage]) {
    const block = agentBlock(page);
    await block.locator('.finished.status-completed').waitFor({ timeout: 120_000 });
    assert.match(await block.locator('.agent-body').textContent(), /Tidy the notes/);
    assert.equal(await block.locator('details.tool').count(), 1);
    assert.match(await block.locator('details.tool').textContent(), /ls -a/);
    assert.match(await block.locator('details.file-edit').textContent(), /notes\.md/);
    assert.deepEqual(page.errors, []);
  }
  // The text both show is what the room stored (rendered as Markdown: plain prose here).
  const stored = (await allEvents(ctx.server, alice, sid)).filter((e) => e.type === 'token').map((e) => e.delta).join('');
  assert.match(stored, /Working on: Tidy the notes/);
  for (const page of [alicePage, bobPage]) assert.equal(folded(await answerText(page)), folded(stored));
  await screenshot(alicePage, 'agent-session-desktop');
  const phone = await pageFor(t, bob, sid, { width: 390, height: 844 });
  await agentBlock(phone).locator('.finished').waitFor();
  await screenshot(phone, 'agent-session-phone', { fullPage: false });
});

test('a reload mid-stream shows every line once; Stop ends a running prompt', { timeout: 180_000 }, async (t) => {
  const { alice, bob, sid } = await roomOfTwo(ctx.server, 'Reload while streaming');
  const alicePage = await pageFor(t, alice, sid);
  const bobPage = await pageFor(t, bob, sid);
  const words = Array.from({ length: 60 }, (_, i) => `word${i}`).join(' ');
  const input = alicePage.getByLabel('Prompt', { exact: true });
  await input.fill(`${words}\nsleep 1500`);
  await input.press('Enter');

  // Bob reloads while tokens arrive.
  await agentBlock(bobPage).locator('.answer').first().waitFor({ timeout: 60_000 });
  await bobPage.reload();
  await bobPage.locator('.conn-live').waitFor();
  await agentBlock(bobPage).locator('.finished.status-completed').waitFor({ timeout: 120_000 });
  const events = await allEvents(ctx.server, alice, sid);
  const seqs = await shownSeqs(bobPage);
  assert.deepEqual([...new Set(seqs)].sort((a, b) => a - b), seqs.slice().sort((a, b) => a - b), 'no seq shown twice');
  for (const event of events.filter((e) => ['message', 'token', 'tool_call', 'prompt_finished'].includes(e.type))) {
    assert.ok(seqs.includes(event.seq), `seq ${event.seq} (${event.type}) is shown`);
  }
  const stored = events.filter((e) => e.type === 'token').map((e) => e.delta).join('');
  assert.equal(folded(await answerText(bobPage)), folded(stored), 'each delta once, in order');

  // A long prompt, stopped from Bob's page.
  await input.fill('wait\n$ sleep 30');
  await input.press('Enter');
  const stop = bobPage.getByRole('button', { name: 'Stop' });
  await bobPage.locator('details.tool').last().waitFor({ timeout: 60_000 });
  await stop.click();
  for (const page of [alicePage, bobPage]) {
    await agentBlock(page).locator('.finished.status-cancelled').waitFor({ timeout: 30_000 });
  }
});

/** An agent answer with everything Markdown rendering must get right, and markup that must stay text. */
const ANSWER = [
  '## What I changed',
  '',
  'The card now wraps, **in short**:',
  '',
  '1. `max-width` instead of a fixed width;',
  '2. the chart keeps its size.',
  '',
  'Markup stays text: <script>window.pwned = 1</script> and <img src=x onerror="window.pwned = 2">.',
  'A [javascript link](javascript:window.pwned=3) is not a link; [the docs](https://example.com/docs) are.',
  '',
  '```css',
  '.card {',
  '  max-width: 100%; /* was: width: 400px */',
  '}',
  '```',
  '',
  '| file | lines |',
  '|:-----|------:|',
  '| src/card.css | +1 −1 |',
].join('\n');

test('an answer in Markdown renders as Markdown, and nothing in it becomes markup or runs', { timeout: 180_000 }, async (t) => {
  // A second Worker whose provider is the test: it dials in as the sandbox and streams the answer.
  const secret2 = randomBytes(24).toString('base64url');
  const recorder = await startRecordingProvider({ secret: secret2 });
  t.after(() => recorder.stop());
  const server = await startServer({ vars: { PROVIDER: 'local', PROVIDER_URL: recorder.url, PROVIDER_SECRET: secret2 } });
  t.after(() => server.stop());

  const { alice, bob, sid } = await roomOfTwo(server, 'Markdown answer');
  const alicePage = await pageFor(t, alice, sid, { width: 1280, height: 800 }, server);
  const bobPage = await pageFor(t, bob, sid, { width: 1280, height: 800 }, server);

  const input = alicePage.getByLabel('Prompt', { exact: true });
  await input.fill('Why does the card overflow? <b>not bold</b> [not a link](https://example.com)');
  await input.press('Enter');
  const create = await nthCreate(recorder, 1, 20_000);
  const bridge = await dialBridge(server, sid, { token: create.sandbox_token, sandboxId: create.sandbox_id });
  t.after(() => bridge.close());
  bridge.send({ type: 'ready', sandbox_id: create.sandbox_id, agent: 'test', agent_version: '1' });
  const job = await bridge.waitFor((f) => f.type === 'prompt', 20_000);

  // Streamed in small pieces, as a model does: tags and links are split across deltas.
  const pieces = ANSWER.match(/[\s\S]{1,7}/g);
  for (const [i, delta] of pieces.entries()) {
    bridge.send({ type: 'token', message_id: job.message_id, delta });
    if (i % 10 === 9) await sleep(15);
  }
  bridge.send({ type: 'done', message_id: job.message_id, ok: true, ack_id: 'done-1' });

  for (const page of [alicePage, bobPage]) {
    const block = agentBlock(page);
    await block.locator('.finished.status-completed').waitFor({ timeout: 60_000 });
    const answer = block.locator('.answer');
    assert.equal(await answer.count(), 1, 'one run of text, one answer');
    const text = await answer.textContent();
    // Raw HTML shows as the text it is; no element came of it and no script ran.
    assert.match(text, /Markup stays text: <script>window\.pwned = 1<\/script> and <img src=x onerror="window\.pwned = 2">\./);
    assert.equal(await page.locator('.timeline script, .timeline img, .timeline b').count(), 0);
    assert.equal(await page.evaluate(() => window.pwned ?? null), null);
    // The javascript: link is text; the http link is a link that opens safely.
    assert.match(text, /A \[javascript link\]\(javascript:window\.pwned=3\) is not a link/);
    assert.equal(await page.locator('.timeline a[href^="javascript"], .answer a:not([href^="https://"])').count(), 0);
    const docs = answer.getByRole('link', { name: 'the docs' });
    assert.equal(await docs.getAttribute('href'), 'https://example.com/docs');
    assert.equal(await docs.getAttribute('target'), '_blank');
    assert.equal(await docs.getAttribute('rel'), 'noopener noreferrer');
    // Markdown structure: a heading under the page's own (## becomes <h4>), a list, strong text, a table.
    assert.equal(await answer.locator('h4').textContent(), 'What I changed');
    assert.equal(await answer.locator('ol > li').count(), 2);
    assert.equal(await answer.locator('strong').textContent(), 'in short');
    assert.equal(await answer.locator('td.align-right').textContent(), '+1 −1');
    // The code block is monospaced and keeps its lines.
    const code = answer.locator('pre > code.language-css');
    assert.equal(await code.textContent(), '.card {\n  max-width: 100%; /* was: width: 400px */\n}\n');
    const style = await code.evaluate((el) => ({ font: getComputedStyle(el).fontFamily, space: getComputedStyle(el.parentElement).whiteSpace }));
    assert.match(style.font, /mono|Menlo|Consolas/i);
    assert.equal(style.space, 'pre');
    assert.match(await answer.locator('li code').first().evaluate((el) => getComputedStyle(el).fontFamily), /mono|Menlo|Consolas/i);
    // The prompt stays plain text.
    const prompt = page.locator('.timeline .entry.message .content');
    assert.equal(await prompt.textContent(), 'Why does the card overflow? <b>not bold</b> [not a link](https://example.com)');
    assert.equal(await prompt.locator('a, b').count(), 0);
    const seqs = await shownSeqs(page);
    assert.equal(new Set(seqs).size, seqs.length, 'no seq shown twice');
    assert.deepEqual(page.errors, [], 'no errors, and no CSP refusals');
  }
  const stored = (await allEvents(server, alice, sid)).filter((e) => e.type === 'token').map((e) => e.delta).join('');
  assert.equal(stored, ANSWER);
  await screenshot(alicePage, 'agent-markdown-desktop');
  const phone = await pageFor(t, bob, sid, { width: 390, height: 844 }, server);
  await agentBlock(phone).locator('.finished').waitFor();
  assert.ok(await phone.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no sideways scrolling on a phone');
  await screenshot(phone, 'agent-markdown-phone');

  // Deltas arriving together are rendered once, on the next animation frame, not once each.
  const renders = await alicePage.evaluate(async () => {
    const { Timeline } = await import('/js/timeline.js');
    const list = document.createElement('ol');
    const timeline = new Timeline(list, { me: () => null, statusOf: () => 'running', isAttached: () => false, toggleAttach() {}, announce() {} });
    const frames = () => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
    timeline.add({ seq: 1, type: 'token', message_id: 'm', delta: 'word1 ' });
    await frames();
    const records = [];
    const observer = new MutationObserver((batch) => records.push(...batch));
    observer.observe(list, { childList: true, subtree: true });
    const renderedAnswer = (r) => r.target.classList?.contains('answer');
    for (let seq = 2; seq <= 201; seq++) timeline.add({ seq, type: 'token', message_id: 'm', delta: `word${seq} ` });
    const whileAdding = observer.takeRecords().filter(renderedAnswer).length;
    await frames();
    return {
      whileAdding,
      renders: records.filter(renderedAnswer).length,
      text: list.querySelector('.answer').textContent,
    };
  });
  assert.equal(renders.whileAdding, 0, 'nothing renders while the deltas come in');
  assert.equal(renders.renders, 1, '200 deltas, one render');
  assert.match(renders.text, /^word1 word2 .* word201$/);
});
