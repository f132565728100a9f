// GitHub against a fake at the network boundary (tests/support/fake-github.mjs): sign-in with
// state and PKCE over plain HTTP, admission and refusals, the session cookie and its
// cross-site rule, the App's JWT from a PKCS#1 key, down-scoped installation tokens for the
// sandbox's git credential helper, the branch a push makes, pull requests opened with the
// acting user's own token (reused, refreshed once under concurrency), webhooks (forged,
// replayed, merged, from a fork), and no token anywhere it must not be.
//
// The test speaks as the bridge through the recording provider, so it holds sandbox tokens.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { ROOT, allEvents, api, createSession, createUser, addMember, eventually, rid, sleep, useServer } from './support/server.mjs';
import { dialBridge, nthCreate, startRecordingProvider } from './support/sandbox.mjs';
import { appKeyPair, startFakeGithub, webhookSignature } from './support/fake-github.mjs';

const providerSecret = randomBytes(24).toString('base64url');
const clientSecret = `cs_${randomBytes(16).toString('hex')}`;
const webhookSecret = `wh_${randomBytes(16).toString('hex')}`;
const tokenKey = randomBytes(32).toString('base64');
const keys = appKeyPair();
const users = {
  ada: { name: 'Ada Lovelace', emails: [{ email: 'ada@example.com', primary: true, verified: true }] },
  bob: { name: 'Bob Builder', emails: [{ email: 'bob@example.net', primary: true, verified: true }] },
  carol: { name: 'Carol', emails: [{ email: 'carol@example.net', primary: true, verified: true }] },
  grace: { name: 'Grace', emails: [], orgs: ['acme-org'] },
  erin: { name: 'Erin', emails: [{ email: 'erin@allowed.example', primary: true, verified: true }] },
  mallory: { name: 'Mallory', emails: [{ email: 'm@evil.example', primary: true, verified: true }, { email: 'm@allowed.example', primary: false, verified: false }], orgs: ['other-org'] },
};
let fake;
let provider;

const ctx = useServer({
  vars: async () => {
    fake = await startFakeGithub({
      appId: 4242,
      publicKey: keys.publicKey,
      clientId: 'Iv1.test',
      clientSecret,
      users,
      installations: [{ account: 'acme', repos: ['acme/demo', 'acme/web'] }],
    });
    provider = await startRecordingProvider({ secret: providerSecret });
    return {
      PROVIDER: 'local',
      PROVIDER_URL: provider.url,
      PROVIDER_SECRET: providerSecret,
      GITHUB_APP_ID: '4242',
      // As GitHub hands it out (PKCS#1), pasted into one line with \n escapes.
      GITHUB_APP_PRIVATE_KEY: keys.pkcs1.replace(/\n/g, '\\n'),
      GITHUB_CLIENT_ID: 'Iv1.test',
      GITHUB_CLIENT_SECRET: clientSecret,
      GITHUB_WEBHOOK_SECRET: webhookSecret,
      TOKEN_ENCRYPTION_KEY: tokenKey,
      GITHUB_API_URL: fake.apiUrl,
      GITHUB_WEB_URL: fake.url,
      GIT_HOST: `${fake.url}/git`,
      ALLOWED_GITHUB_USERS: 'ada, bob, carol',
      ALLOWED_GITHUB_ORGS: 'acme-org',
      ALLOWED_EMAIL_DOMAINS: 'allowed.example',
      DEFAULT_SCOPES: '{"repos":["acme/*"]}',
    };
  },
});

after(async () => {
  await provider?.stop();
  await fake?.stop();
});

const gitHost = () => new URL(fake.url).host;

/** Signs `login` in through the whole flow over plain HTTP → {status, location, cookie, setCookies}. */
async function signIn(login, { returnTo = '/', tamper } = {}) {
  fake.browserUser = login;
  const start = await fetch(`${ctx.server.url}/v1/auth/github/login?return_to=${encodeURIComponent(returnTo)}`, { redirect: 'manual' });
  assert.equal(start.status, 302);
  const authorize = new URL(start.headers.get('location'));
  const loginCookie = start.headers.getSetCookie().find((c) => c.startsWith('sc_oauth='));
  assert.ok(loginCookie, 'the login sets its state cookie');
  const page = await (await fetch(authorize)).text();
  const href = /id="authorize"[^>]*href="([^"]+)"/.exec(page)[1].replace(/&amp;/g, '&');
  const approved = await fetch(new URL(href, fake.url), { redirect: 'manual' });
  assert.equal(approved.status, 302);
  let callback = approved.headers.get('location');
  if (tamper) callback = tamper(callback);
  const done = await fetch(callback, { redirect: 'manual', headers: { cookie: loginCookie.split(';')[0] } });
  const setCookies = done.headers.getSetCookie();
  const session = setCookies.find((c) => c.startsWith('sc_session=') && !c.includes('Max-Age=0'));
  return { status: done.status, location: done.headers.get('location'), cookie: session?.split(';')[0], setCookies, authorize, loginCookie };
}

/** A client that authenticates with the session cookie, from the page's own origin unless told. */
function browser(cookie, origin) {
  const http = api(ctx.server);
  const headers = () => ({ cookie, origin: origin ?? ctx.server.url });
  return {
    get: (p) => http.get(p, { headers: { cookie } }),
    post: (p, body, extra = {}) => http.post(p, { body, headers: { ...headers(), ...extra } }),
  };
}

async function me(cookie) {
  const res = await browser(cookie).get('/v1/me');
  assert.equal(res.status, 200, res.text);
  return res.json;
}

/** Rows of the local D1 database, read with wrangler as an operator would. */
function d1(sql) {
  const out = execFileSync(path.join(ROOT, 'node_modules', '.bin', 'wrangler'), ['d1', 'execute', 'DB', '--local', '--persist-to', ctx.server.persistDir, '--command', sql, '--json'], {
    cwd: ROOT,
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: 'true', NO_COLOR: '1' },
    encoding: 'utf8',
  });
  return JSON.parse(out)[0].results;
}

/** The session's sandbox, with the test speaking as its bridge: it says ready and heartbeats. */
async function sandboxOf(sid, creates) {
  const create = await nthCreate(provider, creates);
  assert.equal(create.session_id, sid);
  const bridge = ctx.clients.add(await dialBridge(ctx.server, sid, { token: create.sandbox_token, sandboxId: create.sandbox_id }));
  bridge.send({ type: 'ready', sandbox_id: create.sandbox_id, agent: 'test', agent_version: '1' });
  const timer = setInterval(() => bridge.isOpen && bridge.send({ type: 'heartbeat' }), 500);
  bridge.closed.then(() => clearInterval(timer));
  return { create, bridge };
}

/** Runs a prompt as the bridge: the prompt frame comes, a push is reported, the prompt ends;
 * resolves once the room acknowledged every frame (so all of it is stored). */
async function promptAndPush(sandbox, { commit = randomBytes(20).toString('hex'), files = 1 } = {}) {
  const prompt = await sandbox.bridge.waitFor((f) => f.type === 'prompt' && !sandbox.seen?.has(f.message_id), 10_000);
  sandbox.seen = new Set([...(sandbox.seen ?? []), prompt.message_id]);
  const acks = [rid('edit'), rid('push'), rid('done')];
  sandbox.bridge.send({ type: 'file_edit', message_id: prompt.message_id, path: 'hello.txt', diff: '+hi', ack_id: acks[0] });
  sandbox.bridge.send({ type: 'pushed', message_id: prompt.message_id, branch: prompt.push_branch, commit, files_changed: files, additions: 1, deletions: 0, ack_id: acks[1] });
  sandbox.bridge.send({ type: 'done', message_id: prompt.message_id, ok: true, ack_id: acks[2] });
  for (const ack of acks) await sandbox.bridge.waitFor((f) => f.type === 'ack' && f.ack_id === ack, 10_000);
  return { prompt, commit };
}

/** Every session the file opened, with a way in, for the search for secrets at the end. */
const sessionsOpened = [];

/** A session owned by `owner` (an API-key user, or `{cookie}` signed in), with a pushed branch. */
async function pushedSession(title, owner) {
  const creates = provider.creates.length + 1;
  const body = { repo: 'acme/demo', title, prompt: 'write hello.txt: hi' };
  const created = owner.cookie ? (await browser(owner.cookie).post('/v1/sessions', body)).json : await createSession(ctx.server, owner, body);
  const sid = created.session.id;
  sessionsOpened.push({ sid, owner });
  const sandbox = await sandboxOf(sid, creates);
  const pushed = await promptAndPush(sandbox);
  return { sid, sandbox, created, ...pushed };
}

/** A session's events, read with a key or the session cookie. */
async function eventsOf(sid, owner) {
  if (owner.key) return allEvents(ctx.server, owner, sid);
  return (await browser(owner.cookie).get(`/v1/sessions/${sid}/events?limit=1000`)).json.events;
}

function credentialRequest(sid, create, body, { token = create.sandbox_token, sandboxId = create.sandbox_id } = {}) {
  const headers = { authorization: `Bearer ${token}` };
  if (sandboxId) headers['x-sandbox-id'] = sandboxId;
  return api(ctx.server).post(`/v1/sessions/${sid}/sandbox/git-credentials`, { body, headers });
}

describe('sign-in with GitHub', () => {
  test('authorize, callback, cookie, /v1/me: state and PKCE, a user created with the default scopes', async () => {
    const methods = await api(ctx.server).get('/v1/auth/methods');
    assert.deepEqual(methods.json, { api_key: true, github: true });

    const signed = await signIn('ada', { returnTo: '/s/ses_0123456789abcdef0123456789abcdef' });
    const params = signed.authorize.searchParams;
    assert.equal(`${signed.authorize.origin}${signed.authorize.pathname}`, `${fake.url}/login/oauth/authorize`);
    assert.equal(params.get('client_id'), 'Iv1.test');
    assert.equal(params.get('redirect_uri'), `${ctx.server.url}/v1/auth/github/callback`);
    assert.equal(params.get('code_challenge_method'), 'S256');
    assert.match(params.get('code_challenge'), /^[\w-]{43}$/);
    assert.match(params.get('state'), /^[\w-]{20,}$/);
    assert.match(signed.loginCookie, /HttpOnly/);
    assert.match(signed.loginCookie, /Path=\/v1\/auth\/github/);

    assert.equal(signed.status, 302);
    assert.equal(signed.location, '/#/s/ses_0123456789abcdef0123456789abcdef');
    const session = signed.setCookies.find((c) => c.startsWith('sc_session='));
    for (const attribute of ['HttpOnly', 'Secure', 'SameSite=Lax', 'Path=/', 'Max-Age=604800']) assert.ok(session.includes(attribute), `${attribute} in ${session}`);
    assert.ok(signed.setCookies.some((c) => c.startsWith('sc_oauth=;') && c.includes('Max-Age=0')), 'the login cookie is cleared');

    const who = await me(signed.cookie);
    assert.equal(who.user.github_login, 'ada');
    assert.equal(who.user.name, 'Ada Lovelace');
    assert.equal(who.user.email, 'ada@example.com');
    assert.deepEqual(who.user.scopes, { repos: ['acme/*'] });
    assert.deepEqual(who.github, { login: 'ada', connected: true });

    // Signing in again links the same user.
    const again = await signIn('ada');
    assert.equal((await me(again.cookie)).user.id, who.user.id);

    // An API-key user whose email GitHub verifies is linked, not duplicated.
    const carolByKey = await api(ctx.server).post('/v1/users', { key: ctx.server.adminKey, body: { name: 'Carol', email: 'carol@example.net', scopes: { repos: ['*'] } } });
    const carol = await signIn('carol');
    const linked = await me(carol.cookie);
    assert.equal(linked.user.id, carolByKey.json.user.id);
    assert.equal(linked.user.github_login, 'carol');
    assert.deepEqual(linked.user.scopes, { repos: ['*'] }, 'a linked user keeps their scopes');
  });

  test('admission by organisation and by verified email domain; a refused user is told why', async () => {
    const grace = await signIn('grace');
    assert.equal(grace.status, 302);
    assert.ok(grace.cookie, 'a member of an allowed organisation is admitted');
    assert.match((await me(grace.cookie)).user.email, /noreply/);
    const erin = await signIn('erin');
    assert.ok(erin.cookie, 'a verified email in an allowed domain admits');

    const mallory = await signIn('mallory');
    assert.equal(mallory.status, 302);
    assert.equal(mallory.cookie, undefined, 'no session for a refused user');
    const location = new URL(mallory.location, ctx.server.url);
    assert.equal(location.pathname, '/');
    const fragment = new URLSearchParams(location.hash.replace(/^#\/signin\?/, ''));
    assert.equal(fragment.get('error'), 'not_allowed');
    assert.match(fragment.get('reason'), /mallory is not allowed/);

    // A callback whose state is not the login's, and one without the login's cookie.
    const forged = await signIn('ada', { tamper: (url) => url.replace(/state=[^&]+/, 'state=forged') });
    assert.match(forged.location, /error=state_mismatch/);
    assert.equal(forged.cookie, undefined);
    const stray = await fetch(`${ctx.server.url}/v1/auth/github/callback?code=x&state=y`, { redirect: 'manual' });
    assert.equal(stray.status, 302);
    assert.match(stray.headers.get('location'), /error=expired/);
  });

  test('a state-changing request with the cookie must come from the page itself; logout clears it', async () => {
    const { cookie } = await signIn('ada');
    const foreign = await browser(cookie, 'https://evil.example').post('/v1/sessions', { repo: 'acme/demo' });
    assert.equal(foreign.status, 403);
    assert.equal(foreign.json.error.code, 'forbidden');
    const noOrigin = await api(ctx.server).post('/v1/sessions', { body: { repo: 'acme/demo' }, headers: { cookie } });
    assert.equal(noOrigin.status, 403);
    assert.equal((await browser(cookie, 'https://evil.example').get('/v1/me')).status, 200, 'reads need no origin');
    const own = await browser(cookie).post('/v1/sessions', { repo: 'acme/demo', title: 'from the page' });
    assert.equal(own.status, 201, own.text);

    const out = await browser(cookie).post('/v1/auth/logout');
    assert.equal(out.status, 204);
    assert.ok(out.headers.getSetCookie().some((c) => c.startsWith('sc_session=;') && c.includes('Max-Age=0')));
    const forged = `sc_session=${cookie.split('=')[1].replace(/.$/, (c) => (c === 'A' ? 'B' : 'A'))}`;
    assert.equal((await browser(forged).get('/v1/me')).status, 401);
  });
});

describe('the sandbox and the session branch', () => {
  test('prompts carry the session branch; a push makes the branch artifact, a later one updates it', async () => {
    const alice = await createUser(ctx.server, 'Alice', { repos: ['acme/*'] });
    const { sid, sandbox, prompt, commit } = await pushedSession('branch', alice);
    assert.equal(prompt.push_branch, `agent/${sid}`);
    const events = await eventually(async () => {
      const all = await allEvents(ctx.server, alice, sid);
      return all.some((e) => e.type === 'prompt_finished') && all;
    });
    const created = events.find((e) => e.type === 'artifact_created' && e.artifact.type === 'branch');
    assert.deepEqual(created.artifact.data, { name: `agent/${sid}`, commit, files_changed: 1, additions: 1, deletions: 0, url: `${fake.url}/acme/demo/tree/agent/${sid}` });
    assert.equal(created.artifact.message_id, prompt.message_id);

    await api(ctx.server).post(`/v1/sessions/${sid}/prompts`, { key: alice.key, body: { content: 'again' } });
    const second = await promptAndPush(sandbox, { files: 2 });
    const updated = await eventually(async () => (await allEvents(ctx.server, alice, sid)).find((e) => e.type === 'artifact_updated'));
    assert.equal(updated.artifact.id, created.artifact.id);
    assert.equal(updated.artifact.data.commit, second.commit);
    assert.equal(updated.artifact.data.files_changed, 2);
    const listed = await api(ctx.server).get(`/v1/sessions/${sid}/artifacts`, { key: alice.key });
    assert.equal(listed.json.artifacts.filter((a) => a.type === 'branch').length, 1);
  });

  test('git credentials: a down-scoped installation token, reused; foreign tokens, other repositories and hosts refused', async () => {
    const alice = await createUser(ctx.server, 'Alice', { repos: ['acme/*'] });
    const { sid, sandbox } = await pushedSession('credentials', alice);
    const { create } = sandbox;
    const ask = { protocol: 'http', host: gitHost(), path: 'git/acme/demo.git' };
    const before = fake.tokenRequests.length;
    const first = await credentialRequest(sid, create, ask);
    assert.equal(first.status, 200, first.text);
    assert.equal(first.json.username, 'x-access-token');
    assert.match(first.json.password, /^ghs_/);
    assert.ok(Date.parse(first.json.expires_at) > Date.now() + 50 * 60_000);
    const minted = fake.tokenRequests.slice(before);
    assert.equal(minted.length, 1);
    assert.deepEqual(minted[0].body, { repositories: ['demo'], permissions: { contents: 'write' } }, 'one repository, contents only');
    const again = await credentialRequest(sid, create, ask);
    assert.equal(again.json.password, first.json.password, 'cached until five minutes before it expires');
    assert.equal(fake.tokenRequests.length, before + 1);
    assert.ok(fake.requests.some((r) => r.path === '/api/v3/repos/acme/demo/installation'), 'the installation is looked up per repository');

    const refusals = [
      [{ token: 'not-a-sandbox-token' }, ask, 401],
      [{ sandboxId: 'sbx_someoneelse' }, ask, 403],
      [{}, { ...ask, path: 'git/acme/web.git' }, 403],
      [{}, { ...ask, host: 'github.com' }, 403],
      [{}, { ...ask, protocol: 'https' }, 403],
      [{}, { protocol: 'http', host: gitHost() }, 403],
    ];
    for (const [who, body, status] of refusals) {
      const res = await credentialRequest(sid, create, body, who);
      assert.equal(res.status, status, `${JSON.stringify({ who, body })}: ${res.text}`);
      assert.ok(!res.text.includes('ghs_'));
    }
    // Another session's sandbox token is not this session's.
    const other = await pushedSession('other', alice);
    assert.equal((await credentialRequest(sid, other.sandbox.create, ask, { sandboxId: other.sandbox.create.sandbox_id })).status, 401);
    assert.equal((await credentialRequest(sid, create, { protocol: 'http', host: gitHost(), path: 'x', extra: 1 })).status, 422);
  });
});

describe('pull requests', () => {
  test('opened by a second participant with their own token; reused when open; before a push it is a conflict', async () => {
    const alice = await createUser(ctx.server, 'Alice', { repos: ['acme/*'] });
    const empty = await createSession(ctx.server, alice, { title: 'nothing pushed' });
    const bob = await signIn('bob');
    const bobUser = (await me(bob.cookie)).user;
    await addMember(ctx.server, alice, empty.session.id, bobUser);
    const early = await browser(bob.cookie).post(`/v1/sessions/${empty.session.id}/pull-request`, {});
    assert.equal(early.status, 409);
    assert.equal(early.json.error.code, 'conflict');

    const { sid, sandbox } = await pushedSession('pull request', alice);
    await addMember(ctx.server, alice, sid, bobUser);
    const opened = await browser(bob.cookie).post(`/v1/sessions/${sid}/pull-request`, {});
    assert.equal(opened.status, 201, opened.text);
    const pr = opened.json.pull_request;
    assert.equal(pr.state, 'open');
    assert.equal(pr.head, `agent/${sid}`);
    assert.equal(pr.base, 'main');
    assert.equal(pr.url, `${fake.url}/acme/demo/pull/${pr.number}`);
    assert.deepEqual(pr.opened_by, { user_id: bobUser.id, name: 'Bob Builder', github_login: 'bob' });
    const onGithub = fake.pulls.get('acme/demo').find((p) => p.number === pr.number);
    assert.equal(onGithub.login, 'bob', 'GitHub saw Bob’s own token');
    assert.ok(fake.tokensOf.bob.includes(onGithub.token));
    assert.equal(onGithub.title, 'write hello.txt: hi');
    assert.match(onGithub.body, /Prompted by Alice/);
    assert.match(onGithub.body, /`hello\.txt`/);
    assert.ok(onGithub.body.includes(`${ctx.server.url}/#/s/${sid}`));

    // The session as its members see it: the branch and the pull request, in the list too.
    const state = await browser(bob.cookie).get(`/v1/sessions/${sid}`);
    assert.equal(state.json.branch.data.name, `agent/${sid}`);
    assert.equal(state.json.pull_request.id, opened.json.artifact_id);
    assert.equal(state.json.pull_request.data.number, pr.number);
    const listed = (await browser(bob.cookie).get('/v1/sessions?limit=100')).json.sessions;
    assert.deepEqual(listed.find((s) => s.id === sid).pull_request, { number: pr.number, url: pr.url, state: 'open', opened_by: pr.opened_by });
    assert.equal(listed.find((s) => s.id === empty.session.id).pull_request, null);

    // Alice has no GitHub token, and the App fallback is off.
    const alicePr = await api(ctx.server).post(`/v1/sessions/${sid}/pull-request`, { key: alice.key, body: {} });
    assert.equal(alicePr.status, 403);
    assert.match(alicePr.json.error.message, /sign in with GitHub/);

    // Ada, another member, asks again: the open one is reused and keeps Bob's name.
    const ada = await signIn('ada');
    await addMember(ctx.server, alice, sid, (await me(ada.cookie)).user);
    const reused = await browser(ada.cookie).post(`/v1/sessions/${sid}/pull-request`, { title: 'ignored' });
    assert.equal(reused.status, 200, reused.text);
    assert.equal(reused.json.pull_request.number, pr.number);
    assert.equal(reused.json.artifact_id, opened.json.artifact_id);
    assert.equal(reused.json.pull_request.opened_by.github_login, 'bob');
    assert.equal(fake.pulls.get('acme/demo').filter((p) => p.head === `agent/${sid}`).length, 1);

    // A later push shows on the pull request.
    await api(ctx.server).post(`/v1/sessions/${sid}/prompts`, { key: alice.key, body: { content: 'more' } });
    const later = await promptAndPush(sandbox);
    const updated = await eventually(async () =>
      (await allEvents(ctx.server, alice, sid)).find((e) => e.type === 'artifact_updated' && e.artifact.type === 'pr' && e.artifact.data.head_commit === later.commit),
    );
    assert.equal(updated.artifact.id, opened.json.artifact_id);
    assert.deepEqual(d1(`SELECT state, opened_by FROM pull_requests WHERE number = ${pr.number}`), [{ state: 'open', opened_by: bobUser.id }]);
  });

  test('an expired user token is refreshed exactly once under two concurrent requests', async () => {
    fake.accessExpiresIn = 2;
    const erin = await signIn('erin');
    fake.accessExpiresIn = 8 * 3600;
    const erinUser = (await me(erin.cookie)).user;
    const first = await pushedSession('refresh one', { cookie: erin.cookie, ...erinUser });
    const second = await pushedSession('refresh two', { cookie: erin.cookie, ...erinUser });
    await sleep(2_500);
    fake.expireAccessTokens('erin');
    const before = fake.refreshes.erin ?? 0;
    const [a, b] = await Promise.all([
      browser(erin.cookie).post(`/v1/sessions/${first.sid}/pull-request`, { draft: true }),
      browser(erin.cookie).post(`/v1/sessions/${second.sid}/pull-request`, {}),
    ]);
    assert.equal(a.status, 201, a.text);
    assert.equal(b.status, 201, b.text);
    assert.equal((fake.refreshes.erin ?? 0) - before, 1, 'one refresh exchange');
    const refreshed = fake.tokensOf.erin.at(-1);
    const opened = fake.pulls.get('acme/demo').filter((p) => p.head === `agent/${first.sid}` || p.head === `agent/${second.sid}`);
    assert.deepEqual(opened.map((p) => p.token), [refreshed, refreshed], 'both used the refreshed token');
    assert.equal(opened.find((p) => p.head === `agent/${first.sid}`).draft, true);
    assert.equal((await me(erin.cookie)).github.connected, true);
  });
});

describe('webhooks', () => {
  async function deliver(event, payload, { secret = webhookSecret, delivery = fake.deliveryId() } = {}) {
    const body = JSON.stringify(payload);
    const res = await fetch(`${ctx.server.url}/v1/github/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-github-event': event, 'x-github-delivery': delivery, 'x-hub-signature-256': webhookSignature(secret, body) },
      body,
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : null, delivery };
  }

  test('forged → 401; merged → artifact_updated and D1; a replay changes nothing; forks and other events are ignored', async () => {
    const alice = await createUser(ctx.server, 'Alice', { repos: ['acme/*'] });
    const { sid } = await pushedSession('webhooks', alice);
    const ada = await signIn('ada');
    await addMember(ctx.server, alice, sid, (await me(ada.cookie)).user);
    const opened = await browser(ada.cookie).post(`/v1/sessions/${sid}/pull-request`, {});
    assert.equal(opened.status, 201, opened.text);
    const number = opened.json.pull_request.number;
    const merged = fake.updatePull('acme/demo', number, { state: 'closed', merged_at: '2026-06-01T10:00:00Z', closed_at: '2026-06-01T10:00:00Z' });
    const payload = { action: 'closed', number, pull_request: merged, repository: { full_name: 'acme/demo' } };

    assert.equal((await deliver('pull_request', payload, { secret: 'not-the-secret' })).status, 401);
    const unsigned = await fetch(`${ctx.server.url}/v1/github/webhook`, { method: 'POST', headers: { 'x-github-event': 'pull_request', 'x-github-delivery': 'd1' }, body: JSON.stringify(payload) });
    assert.equal(unsigned.status, 401);

    const first = await deliver('pull_request', payload);
    assert.equal(first.status, 200);
    assert.deepEqual(first.json, { updated: true });
    const updates = async () => (await allEvents(ctx.server, alice, sid)).filter((e) => e.type === 'artifact_updated' && e.artifact.type === 'pr');
    const [update] = await updates();
    assert.equal(update.artifact.id, opened.json.artifact_id);
    assert.equal(update.artifact.data.state, 'merged');
    assert.equal(update.artifact.data.merged_at, '2026-06-01T10:00:00Z');
    assert.deepEqual(d1(`SELECT state, merged_at FROM pull_requests WHERE number = ${number}`), [{ state: 'merged', merged_at: '2026-06-01T10:00:00Z' }]);
    const listed = (await api(ctx.server).get('/v1/sessions?limit=100', { key: alice.key })).json.sessions;
    assert.equal(listed.find((s) => s.id === sid).pull_request.state, 'merged', 'the session list shows what became of it');

    const replay = await deliver('pull_request', payload, { delivery: first.delivery });
    assert.equal(replay.status, 200);
    assert.deepEqual(replay.json, { duplicate: true });
    assert.equal((await updates()).length, 1, 'no second update');

    const fork = structuredClone(payload);
    fork.action = 'reopened';
    fork.pull_request.head.repo.full_name = 'mallory/demo';
    assert.equal((await deliver('pull_request', fork)).status, 204);
    assert.equal((await deliver('push', { ref: `refs/heads/agent/${sid}` })).status, 204);
    assert.equal((await deliver('pull_request', { ...payload, action: 'labeled' })).status, 204);
    assert.equal((await updates()).length, 1);

    const reopened = fake.updatePull('acme/demo', number, { state: 'open', merged_at: null, closed_at: null });
    const back = await deliver('pull_request', { action: 'reopened', number, pull_request: reopened });
    assert.deepEqual(back.json, { updated: true });
    const last = (await updates()).at(-1);
    assert.equal(last.artifact.data.state, 'open');
    assert.equal(last.artifact.data.merged_at, undefined);
  });
});

describe('secrets', () => {
  test('no token the fake issued, and no secret, appears in any event or log line', async () => {
    const events = [];
    for (const { sid, owner } of sessionsOpened) events.push(...(await eventsOf(sid, owner)));
    assert.ok(sessionsOpened.length >= 5 && events.length > 0);
    // Everything wrangler and workerd printed, the dev proxy's request lines included.
    const everything = JSON.stringify(events) + ctx.server.log();
    const secrets = [...fake.issued, clientSecret, webhookSecret, tokenKey, providerSecret, keys.pkcs1.split('\n')[1], keys.pkcs8.split('\n')[1]];
    assert.ok(fake.issued.length >= 5, 'the fake issued user, refresh and installation tokens');
    for (const secret of secrets) assert.ok(!everything.includes(secret), `a secret (${secret.slice(0, 6)}…) leaked`);
    for (const request of fake.requests) assert.ok(!/token|secret/i.test(request.search), `no credential in a URL: ${request.path}${request.search}`);
  });
});
