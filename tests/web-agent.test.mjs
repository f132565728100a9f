// The web page with a real sandbox behind the session: the local provider and `bridge run`
// with the `dev` agent. Two people see the agent's streamed answer, its tool call and its
// file edit; a reload mid-stream shows every line once; Stop ends a running prompt.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { allEvents, freePort, roomOfTwo, useServer } from './support/server.mjs';
import { launchBrowser, openSession, screenshot, shownSeqs, signInContext } from './support/browser.mjs';
import { startLocalProvider } from './support/sandbox.mjs';

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

async function pageFor(t, user, sid, viewport = { width: 1280, height: 800 }) {
  const context = await chrome.browser.newContext({ viewport });
  t.after(() => context.close().catch(() => {}));
  await signInContext(context, user.key);
  return openSession(context, ctx.server, sid);
}

const agentBlock = (page) => page.locator('.timeline .entry.agent').last();

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
  // The text both show is exactly what the room stored.
  const stored = (await allEvents(ctx.server, alice, sid)).filter((e) => e.type === 'token').map((e) => e.delta).join('');
  for (const page of [alicePage, bobPage]) {
    const shown = await agentBlock(page).locator('.tok').evaluateAll((spans) => spans.map((s) => s.textContent).join(''));
    assert.equal(shown, stored);
  }
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
  await agentBlock(bobPage).locator('.tok').first().waitFor({ timeout: 60_000 });
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
  assert.equal(await agentBlock(bobPage).locator('.tok').evaluateAll((s) => s.map((x) => x.textContent).join('')), stored);

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
