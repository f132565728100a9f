// What `npm run dev` promises a newcomer, end to end: the Worker with GIT_HOST pointing at the
// local git host that the real local provider (`bridge provider --git-root`) serves over smart
// HTTP, a bare `acme/demo` made as scripts/dev.sh makes it, and the dev user. A prompt
// `write hello.txt: hi` ends with the branch `agent/<session id>` in that repository, holding a
// commit authored by the dev user with the attribution suffix; the page shows the branch, and
// its "Create pull request" says in a sentence that GitHub is not configured.
//
// Slow by nature (workerd, a provider, a bridge, git, Chromium); every wait is for an event.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { allEvents, api, eventually, freePort, useServer } from './support/server.mjs';
import { collectPageErrors, launchBrowser, signInContext } from './support/browser.mjs';
import { gitIn, makeBareRepo } from './support/git-http.mjs';
import { startLocalProvider } from './support/sandbox.mjs';

const secret = randomBytes(24).toString('base64url');
const providerPort = await freePort();
const gitRoot = await mkdtemp(path.join(os.tmpdir(), 'dev-git-'));
makeBareRepo(gitRoot, 'acme/demo');
let provider = null;
let chrome;

// As scripts/dev.sh passes them.
const ctx = useServer({
  vars: {
    PROVIDER: 'local',
    PROVIDER_URL: `http://127.0.0.1:${providerPort}`,
    PROVIDER_SECRET: secret,
    GIT_HOST: `http://127.0.0.1:${providerPort}/git`,
  },
});

before(async () => {
  provider = await startLocalProvider({ port: providerPort, secret, gitRoot });
  chrome = await launchBrowser();
});

after(async () => {
  await chrome?.close();
  await provider?.stop();
  await rm(gitRoot, { recursive: true, force: true });
});

test('write hello.txt: hi ends on agent/<session id> in the local git host, in the dev user’s name', { timeout: 120_000 }, async (t) => {
  // The dev user as scripts/dev.sh creates it.
  const made = await api(ctx.server).post('/v1/users', { key: ctx.server.adminKey, body: { name: 'Dev', email: 'dev@example.com', scopes: { repos: ['*'] } } });
  assert.equal(made.status, 201, made.text);
  const dev = { id: made.json.user.id, key: made.json.api_key, name: 'Dev' };
  const created = await api(ctx.server).post('/v1/sessions', { key: dev.key, body: { repo: 'acme/demo', title: 'hello', prompt: 'write hello.txt: hi' } });
  assert.equal(created.status, 201, created.text);
  const sid = created.json.session.id;
  const branch = `agent/${sid}`;

  const finished = await eventually(async () => (await allEvents(ctx.server, dev, sid)).find((e) => e.type === 'prompt_finished'), { ms: 60_000, what: 'the prompt finished' });
  assert.equal(finished.status, 'completed', JSON.stringify(finished));
  const events = await allEvents(ctx.server, dev, sid);
  const pushed = events.find((e) => e.type === 'artifact_created' && e.artifact.type === 'branch');
  assert.ok(pushed, `a branch artifact in ${events.map((e) => e.type).join(' ')}`);
  assert.equal(pushed.artifact.data.name, branch);
  assert.equal(pushed.artifact.data.files_changed, 1);

  // What the README says to run: git --git-dir .wrangler/git/acme/demo.git log agent/<session id>
  const git = (...args) => gitIn(gitRoot, 'acme/demo', args);
  assert.equal(git('rev-parse', `refs/heads/${branch}`), pushed.artifact.data.commit);
  assert.equal(git('log', '-1', '--format=%an <%ae>', branch), 'Dev (agent) <dev@example.com>');
  assert.equal(git('log', '-1', '--format=%B', branch), `write hello.txt: hi\n\nSession: ${sid}`);
  assert.equal(git('show', `${branch}:hello.txt`), 'hi');
  assert.equal(git('rev-parse', `${branch}^`), git('rev-parse', 'main'), 'on top of the session’s base branch');

  // The page shows the branch; without GitHub, "Create pull request" says why it cannot.
  const context = await chrome.browser.newContext({ viewport: { width: 1280, height: 800 } });
  t.after(() => context.close().catch(() => {}));
  await signInContext(context, dev.key);
  const page = collectPageErrors(await context.newPage());
  await page.goto(`${ctx.server.url}/#/s/${sid}`);
  await page.locator('.conn-live').waitFor({ timeout: 20_000 });
  await page.locator('.git-branch', { hasText: branch }).waitFor();
  await page.locator('.timeline .git-line', { hasText: `to ${branch}` }).waitFor();
  await page.getByRole('button', { name: 'Create pull request' }).click();
  const refusal = page.locator('.git .form-status[role=alert]');
  await refusal.waitFor();
  assert.match(await refusal.textContent(), /^That is not set up on this coordinator: pull requests need GitHub/);
  assert.equal(await page.getByRole('button', { name: 'Create pull request' }).isEnabled(), true, 'it can be tried again');
  assert.deepEqual(page.errors, []);
});
