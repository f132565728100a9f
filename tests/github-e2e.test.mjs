// GitHub end to end against the fake (support/fake-github.mjs), with every real part: the
// Worker in workerd, the real local provider and `bridge run` with the dev agent, git, and the
// page in headless Chromium.
//
// - The bridge clones from and pushes to the fake's git smart HTTP with credentials its helper
//   fetched from the coordinator: a down-scoped installation token, which the fake checks. A
//   prompt that writes a file ends with `agent/<session id>` in the fake's repository, committed
//   in the name of the person who prompted.
// - Sign-in on the page goes through the fake's authorize page; a refused account is told why.
// - On the page, a signed-in person's session shows its branch, opens its pull request with
//   "Create pull request" (their own token), sees a merge arrive in place, finds the state in
//   the session list, and signs out.
// No token appears on the page, in the page's storage, in events or in any log.
//
// Slow by nature (workerd, a provider, bridges, git, Chromium); every wait is for an event.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { allEvents, createSession, createUser, eventually, freePort, useServer } from './support/server.mjs';
import { collectPageErrors, launchBrowser } from './support/browser.mjs';
import { appKeyPair, startFakeGithub, webhookSignature } from './support/fake-github.mjs';
import { startLocalProvider } from './support/sandbox.mjs';

const providerSecret = randomBytes(24).toString('base64url');
const clientSecret = `cs_${randomBytes(16).toString('hex')}`;
const webhookSecret = `wh_${randomBytes(16).toString('hex')}`;
const tokenKey = randomBytes(32).toString('base64');
const keys = appKeyPair();
const users = {
  ada: { name: 'Ada Lovelace', emails: [{ email: 'ada@example.com', primary: true, verified: true }] },
  mallory: { name: 'Mallory', emails: [{ email: 'm@evil.example', primary: true, verified: true }] },
};
const providerPort = await freePort();
let fake;
let provider;
let chrome;

const ctx = useServer({
  vars: async () => {
    fake = await startFakeGithub({ appId: 4343, publicKey: keys.publicKey, clientId: 'Iv1.e2e', clientSecret, users, installations: [{ account: 'acme', repos: ['acme/demo'] }] });
    return {
      PROVIDER: 'local',
      PROVIDER_URL: `http://127.0.0.1:${providerPort}`,
      PROVIDER_SECRET: providerSecret,
      GITHUB_APP_ID: '4343',
      GITHUB_APP_PRIVATE_KEY: keys.pkcs1,
      GITHUB_CLIENT_ID: 'Iv1.e2e',
      GITHUB_CLIENT_SECRET: clientSecret,
      GITHUB_WEBHOOK_SECRET: webhookSecret,
      TOKEN_ENCRYPTION_KEY: tokenKey,
      GITHUB_API_URL: fake.apiUrl,
      GITHUB_WEB_URL: fake.url,
      // The fake serves git where GitHub does: https://github.com/<owner>/<name>.git.
      GIT_HOST: fake.url,
      ALLOWED_GITHUB_USERS: 'ada',
      DEFAULT_SCOPES: '{"repos":["acme/*"]}',
    };
  },
});

before(async () => {
  provider = await startLocalProvider({ port: providerPort, secret: providerSecret });
  chrome = await launchBrowser();
});

after(async () => {
  await chrome?.close();
  await provider?.stop();
  await fake?.stop();
});

const ONE_REPO = { repositories: ['demo'], permissions: { contents: 'write' } };

/** Waits for the session's first prompt to finish → its events. */
async function firstPromptDone(user, sid) {
  const finished = await eventually(async () => (await allEvents(ctx.server, user, sid)).find((e) => e.type === 'prompt_finished'), { ms: 60_000, what: 'the prompt finished' });
  assert.equal(finished.status, 'completed', JSON.stringify(finished));
  return allEvents(ctx.server, user, sid);
}

/** The `.git/config` of every workspace the local provider made. */
async function workspaceConfigs() {
  const configs = [];
  for (const entry of await readdir(provider.workspaces)) {
    configs.push(await readFile(path.join(provider.workspaces, entry, '.git', 'config'), 'utf8').catch(() => ''));
  }
  return configs.join('\n');
}

/** Every token the fake issued and every secret, none of which may be in `text`. */
function assertNoSecret(text, where) {
  const secrets = [...fake.issued, clientSecret, webhookSecret, tokenKey, providerSecret, keys.pkcs1.split('\n')[1]];
  for (const secret of secrets) assert.ok(!text.includes(secret), `a secret (${secret.slice(0, 4)}…) is in ${where}`);
}

test('a prompt that writes a file ends on agent/<session id> in GitHub’s repository, in the prompter’s name, with a down-scoped token', { timeout: 120_000 }, async () => {
  const alice = await createUser(ctx.server, 'Alice', { repos: ['acme/*'] });
  const created = await createSession(ctx.server, alice, { title: 'hello', prompt: 'write hello.txt: hi' });
  const sid = created.session.id;
  const branch = `agent/${sid}`;
  const events = await firstPromptDone(alice, sid);
  const pushed = events.find((e) => e.type === 'artifact_created' && e.artifact.type === 'branch');
  assert.ok(pushed, `a branch artifact in ${events.map((e) => e.type).join(' ')}`);
  assert.equal(pushed.artifact.data.name, branch);
  assert.equal(pushed.artifact.data.url, `${fake.url}/acme/demo/tree/${branch}`);

  assert.equal(fake.git('acme/demo', 'rev-parse', `refs/heads/${branch}`), pushed.artifact.data.commit);
  assert.equal(fake.git('acme/demo', 'log', '-1', '--format=%an <%ae>', branch), `Alice (agent) <${alice.user.email}>`);
  assert.equal(fake.git('acme/demo', 'log', '-1', '--format=%B', branch), `write hello.txt: hi\n\nSession: ${sid}`);
  assert.equal(fake.git('acme/demo', 'show', `${branch}:hello.txt`), 'hi');
  assert.equal(fake.git('acme/demo', 'rev-parse', `${branch}^`), fake.git('acme/demo', 'rev-parse', 'main'));

  // git asked without credentials, got GitHub's challenge, and its helper's answer was an
  // installation token for this one repository with contents: write, for the clone and the push.
  const served = fake.gitRequests.filter((r) => r.status === 200);
  assert.ok(fake.gitRequests.some((r) => r.status === 401), 'the first request had no credentials');
  for (const service of ['git-upload-pack', 'git-receive-pack']) {
    const used = served.filter((r) => r.service === service);
    assert.ok(used.length > 0, `${service} was served`);
    for (const r of used) assert.deepEqual({ kind: r.who.kind, repositories: r.who.repositories, permissions: r.who.permissions }, { kind: 'installation', ...ONE_REPO });
  }
  // Besides the sandbox's, the only tokens minted list the installation's repositories.
  const forGit = fake.tokenRequests.filter((minted) => minted.body.permissions?.contents);
  assert.ok(forGit.length >= 1);
  for (const minted of forGit) assert.deepEqual(minted.body, ONE_REPO);
  for (const minted of fake.tokenRequests) if (!forGit.includes(minted)) assert.deepEqual(minted.body, { permissions: { metadata: 'read' } });
  assert.ok(fake.gitRequests.every((r) => r.status !== 403), 'nothing was refused');

  // The token was never at rest in the sandbox, nor in an event or a log line.
  const configs = await workspaceConfigs();
  assert.match(configs, /helper/, 'the workspace asks the bridge for credentials');
  assertNoSecret(configs, 'a workspace’s git config');
  assertNoSecret(JSON.stringify(events), 'the events');
  assertNoSecret(ctx.server.log() + provider.log(), 'the logs');
});

test('sign-in with GitHub in Chromium through the authorize page; a refused account reads why', { timeout: 60_000 }, async (t) => {
  const context = await chrome.browser.newContext({ viewport: { width: 1280, height: 800 } });
  t.after(() => context.close().catch(() => {}));
  const page = collectPageErrors(await context.newPage());

  fake.browserUser = 'mallory';
  await page.goto(ctx.server.url);
  await page.getByRole('link', { name: 'Sign in with GitHub' }).click();
  await page.waitForURL((url) => url.origin === fake.url && url.pathname === '/login/oauth/authorize');
  await page.getByRole('button', { name: 'Authorize' }).click();
  const refusal = page.locator('.refusal');
  await refusal.waitFor();
  assert.match(await refusal.textContent(), /^This GitHub account may not sign in here\. The GitHub account mallory is not allowed here/);
  assert.match(page.url(), /#\/signin\?error=not_allowed/);
  await page.getByLabel('Your API key').waitFor();
  assert.deepEqual((await context.cookies(ctx.server.url)).filter((c) => c.name === 'sc_session'), []);

  // Ada, from a shared session link: she comes back to it once signed in.
  fake.browserUser = 'ada';
  const alice = await createUser(ctx.server, 'Alice', { repos: ['acme/*'] });
  const { session } = await createSession(ctx.server, alice, { title: 'Shared with Ada' });
  await page.goto(`${ctx.server.url}/#/s/${session.id}`);
  await page.getByRole('link', { name: 'Sign in with GitHub' }).click();
  await page.getByRole('button', { name: 'Authorize' }).click();
  await page.locator('.whoami', { hasText: 'Ada Lovelace' }).waitFor();
  assert.match(page.url(), new RegExp(`#/s/${session.id}$`));
  await page.locator('.readonly-note', { hasText: 'not one of its members' }).waitFor();
  const cookie = (await context.cookies(ctx.server.url)).find((c) => c.name === 'sc_session');
  assert.ok(cookie?.httpOnly, 'the session cookie is HttpOnly');
  assert.equal(await page.evaluate(() => document.cookie.includes('sc_session')), false, 'and the page cannot read it');
  assert.equal(await page.evaluate(() => localStorage.getItem('coordinator.apiKey')), null, 'no key was stored');
  assert.deepEqual(page.errors, []);
});

test('on the page: the branch, Create pull request with the person’s own token, a merge shown in place, the list, sign-out', { timeout: 150_000 }, async (t) => {
  const context = await chrome.browser.newContext({ viewport: { width: 1280, height: 800 } });
  t.after(() => context.close().catch(() => {}));
  const page = collectPageErrors(await context.newPage());
  fake.browserUser = 'ada';
  await page.goto(ctx.server.url);
  await page.getByRole('link', { name: 'Sign in with GitHub' }).click();
  await page.getByRole('button', { name: 'Authorize' }).click();
  await page.locator('.whoami', { hasText: 'Ada Lovelace' }).waitFor();

  // A session started from the page, on a repository of the App's installation.
  await page.getByLabel('Repository').selectOption('acme/demo');
  await page.getByLabel('Title').fill('Say hello');
  await page.getByLabel('First prompt (optional)').fill('write hello.txt: hi');
  await page.getByRole('button', { name: 'Start session' }).click();
  await page.locator('.conn-live').waitFor({ timeout: 20_000 });
  const sid = decodeURIComponent(page.url().split('#/s/')[1]);
  const branch = `agent/${sid}`;
  await page.locator('.git-branch', { hasText: branch }).waitFor({ timeout: 60_000 });
  await page.locator('.timeline .git-line', { hasText: `to ${branch}` }).waitFor();
  assert.equal(fake.git('acme/demo', 'log', '-1', '--format=%an <%ae>', branch), 'Ada Lovelace (agent) <ada@example.com>');

  // Create pull request: progress, then the pull request in the panel and in the head.
  const button = page.getByRole('button', { name: 'Create pull request' });
  await button.click();
  const prLink = page.locator('.git-pr a', { hasText: /^Pull request #\d+$/ });
  await prLink.waitFor();
  const number = Number((await prLink.textContent()).replace(/\D/g, ''));
  const onGithub = fake.pulls.get('acme/demo').find((p) => p.number === number);
  assert.equal(onGithub.login, 'ada', 'opened with Ada’s own token');
  assert.equal(onGithub.head, branch);
  assert.equal(await prLink.getAttribute('href'), `${fake.url}/acme/demo/pull/${number}`);
  await page.locator('.git-pr .pr-state', { hasText: 'open' }).waitFor();
  await page.locator('.pr-head', { hasText: `PR #${number}` }).waitFor();
  await page.locator('.timeline .git-line', { hasText: `Pull request #${number} opened by Ada Lovelace` }).waitFor();
  assert.equal(await button.isVisible(), false, 'an open pull request is not made twice');

  // GitHub says it was merged: the panel changes in place, without a reload.
  const marker = await page.evaluate(() => {
    window.beforeMerge = document.querySelector('.git-body');
    return true;
  });
  assert.ok(marker);
  const merged = fake.updatePull('acme/demo', number, { state: 'closed', merged_at: '2026-06-01T10:00:00Z', closed_at: '2026-06-01T10:00:00Z' });
  const body = JSON.stringify({ action: 'closed', number, pull_request: merged, repository: { full_name: 'acme/demo' } });
  const delivered = await fetch(`${ctx.server.url}/v1/github/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-github-event': 'pull_request', 'x-github-delivery': fake.deliveryId(), 'x-hub-signature-256': webhookSignature(webhookSecret, body) },
    body,
  });
  assert.equal(delivered.status, 200, await delivered.text());
  await page.locator('.git-pr .pr-state', { hasText: 'merged' }).waitFor();
  await page.locator('.timeline .git-line', { hasText: `Pull request #${number} was merged` }).waitFor();
  assert.equal(await page.evaluate(() => window.beforeMerge === document.querySelector('.git-body')), true, 'the same panel, updated');

  // Nothing secret on the page or in its storage.
  const shown = await page.evaluate(() => document.documentElement.outerHTML + JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie);
  assertNoSecret(shown, 'the page');

  // The session list shows what became of the pull request.
  await page.getByRole('link', { name: 'Sessions', exact: true }).click();
  const item = page.locator(`.session-list li[data-session-id="${sid}"]`);
  await item.locator('.pr-state', { hasText: `PR #${number} merged` }).waitFor();

  // Sign out: the cookie is cleared, and a reload stays signed out.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('link', { name: 'Sign in with GitHub' }).waitFor();
  assert.deepEqual((await context.cookies(ctx.server.url)).filter((c) => c.name === 'sc_session'), []);
  await page.reload();
  await page.getByLabel('Your API key').waitFor();
  assert.deepEqual(page.errors, []);
  assertNoSecret(ctx.server.log() + provider.log(), 'the logs');
});
