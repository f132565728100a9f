// The GitHub App alone (no sign-in), with its key in PKCS#8 form and PR_AS_APP_FALLBACK=true,
// against the fake GitHub: repositories from the installations merged with REPOS, git
// credentials, and a pull request the App opens with a token that may write pull requests.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
import { allEvents, api, createSession, createUser, rid, useServer } from './support/server.mjs';
import { dialBridge, nthCreate, startRecordingProvider } from './support/sandbox.mjs';
import { appKeyPair, startFakeGithub } from './support/fake-github.mjs';

const providerSecret = randomBytes(24).toString('base64url');
const keys = appKeyPair();
let fake;
let provider;

const ctx = useServer({
  vars: async () => {
    fake = await startFakeGithub({
      appId: 77,
      publicKey: keys.publicKey,
      clientId: 'unused',
      clientSecret: 'unused',
      installations: [
        { account: 'acme', repos: ['acme/demo', 'acme/extra'] },
        { account: 'other', repos: ['other/tool'] },
      ],
    });
    provider = await startRecordingProvider({ secret: providerSecret });
    return {
      PROVIDER: 'local',
      PROVIDER_URL: provider.url,
      PROVIDER_SECRET: providerSecret,
      GITHUB_APP_ID: '77',
      // PKCS#8 with its line breaks, as `openssl pkcs8 -topk8` writes it.
      GITHUB_APP_PRIVATE_KEY: keys.pkcs8,
      GITHUB_API_URL: fake.apiUrl,
      GITHUB_WEB_URL: fake.url,
      GIT_HOST: `${fake.url}/git`,
      PR_AS_APP_FALLBACK: 'true',
      BRANCH_PREFIX: 'bots',
    };
  },
});

after(async () => {
  await provider?.stop();
  await fake?.stop();
});

test('repositories come from the installations, merged with REPOS and filtered by scopes', async () => {
  const acme = await createUser(ctx.server, 'Acme dev', { repos: ['acme/*'] });
  const repos = await api(ctx.server).get('/v1/repos', { key: acme.key });
  assert.equal(repos.status, 200, repos.text);
  const names = repos.json.repos.map((r) => r.name);
  assert.deepEqual(names, ['acme/demo', 'acme/web', 'acme/extra']);
  assert.equal(repos.json.repos[0].description, 'A small demo repository for local sessions', 'REPOS wins for what it names');
  assert.equal(repos.json.repos[2].description, 'acme/extra (installed)');
  const everyone = await createUser(ctx.server, 'Everyone', { repos: ['*'] });
  const all = await api(ctx.server).get('/v1/repos', { key: everyone.key });
  assert.ok(all.json.repos.some((r) => r.name === 'other/tool'));
  // A session can be opened on an installed repository REPOS does not name.
  const created = await createSession(ctx.server, acme, { repo: 'acme/extra' });
  assert.equal(created.session.repo, 'acme/extra');
  const jwtCalls = fake.requests.filter((r) => r.path === '/api/v3/app/installations');
  assert.ok(jwtCalls.length >= 1);
  await api(ctx.server).get('/v1/repos', { key: acme.key });
  assert.equal(fake.requests.filter((r) => r.path === '/api/v3/app/installations').length, jwtCalls.length, 'listed once, then cached');
  const methods = await api(ctx.server).get('/v1/auth/methods');
  assert.deepEqual(methods.json, { api_key: true, github: false });
  const login = await fetch(`${ctx.server.url}/v1/auth/github/login`, { redirect: 'manual' });
  assert.equal(login.status, 409);
  assert.equal((await login.json()).error.code, 'not_configured');
});

test('a PKCS#8 key signs the JWT; the App opens the pull request when the fallback allows it', async () => {
  const alice = await createUser(ctx.server, 'Alice', { repos: ['acme/*'] });
  const creates = provider.creates.length + 1;
  const created = await createSession(ctx.server, alice, { prompt: 'add a readme' });
  const sid = created.session.id;
  const create = await nthCreate(provider, creates);
  assert.equal(create.repo.clone_url, `${fake.url}/git/acme/demo.git`, 'the sandbox clones from the git host, with no token in the URL');
  const bridge = ctx.clients.add(await dialBridge(ctx.server, sid, { token: create.sandbox_token, sandboxId: create.sandbox_id }));
  bridge.send({ type: 'ready', sandbox_id: create.sandbox_id, agent: 'test', agent_version: '1' });
  const prompt = await bridge.waitFor((f) => f.type === 'prompt');
  assert.equal(prompt.push_branch, `bots/${sid}`);

  const before = fake.tokenRequests.length;
  const credential = await api(ctx.server).post(`/v1/sessions/${sid}/sandbox/git-credentials`, {
    headers: { authorization: `Bearer ${create.sandbox_token}`, 'x-sandbox-id': create.sandbox_id },
    body: { protocol: 'http', host: new URL(fake.url).host, path: 'git/acme/demo.git' },
  });
  assert.equal(credential.status, 200, credential.text);
  assert.deepEqual(fake.tokenRequests[before].body, { repositories: ['demo'], permissions: { contents: 'write' } });

  // A push to a branch the room did not ask for is refused and stores nothing.
  const wrong = rid('wrong');
  bridge.send({ type: 'pushed', message_id: prompt.message_id, branch: 'main', commit: 'abc', files_changed: 1, additions: 1, deletions: 0, ack_id: wrong });
  await bridge.waitFor((f) => f.type === 'error');
  const ack = rid('push');
  bridge.send({ type: 'pushed', message_id: prompt.message_id, branch: prompt.push_branch, commit: 'c0ffee', files_changed: 1, additions: 3, deletions: 1, ack_id: ack });
  await bridge.waitFor((f) => f.type === 'ack' && f.ack_id === ack);
  const branches = (await allEvents(ctx.server, alice, sid)).filter((e) => e.type === 'artifact_created' && e.artifact.type === 'branch');
  assert.deepEqual(branches.map((e) => e.artifact.data.commit), ['c0ffee']);

  const opened = await api(ctx.server).post(`/v1/sessions/${sid}/pull-request`, { key: alice.key, body: { title: 'Add a readme', body: 'By the agent.' } });
  assert.equal(opened.status, 201, opened.text);
  assert.deepEqual(opened.json.pull_request.opened_by, { user_id: alice.id, name: 'Alice', github_login: null });
  const asked = fake.tokenRequests.at(-1).body;
  assert.deepEqual(asked, { repositories: ['demo'], permissions: { contents: 'write', pull_requests: 'write' } });
  const pr = fake.pulls.get('acme/demo').at(-1);
  assert.equal(pr.login, 'fake-app[bot]');
  assert.equal(pr.title, 'Add a readme');
  assert.equal(pr.head, `bots/${sid}`);
  const bad = await api(ctx.server).post(`/v1/sessions/${sid}/pull-request`, { key: alice.key, body: { title: '' } });
  assert.equal(bad.status, 422);
  const unknown = await api(ctx.server).post(`/v1/sessions/${sid}/pull-request`, { key: alice.key, body: { head: 'x' } });
  assert.equal(unknown.status, 422);
  // No webhook secret: the endpoint does not exist here.
  const hook = await api(ctx.server).post('/v1/github/webhook', { body: {} });
  assert.equal(hook.status, 404);
});

test('the cron reads the heads of installed repositories from GitHub with a read-only token, has their images built, and new sandboxes start from them', async () => {
  const cron = async () => {
    const res = await fetch(`${ctx.server.url}/__scheduled?cron=${encodeURIComponent('*/5 * * * *')}`);
    assert.equal(res.status, 200, await res.text());
  };
  const tokensBefore = fake.tokenRequests.length;
  await cron();
  const head = fake.git('acme/demo', 'rev-parse', 'refs/heads/main');
  const demo = provider.builds.filter((b) => b.repo.owner === 'acme' && b.repo.name === 'demo');
  assert.equal(demo.length, 1, JSON.stringify(provider.builds));
  assert.equal(demo[0].commit, head);
  assert.equal(demo[0].repo.branch, 'main');
  assert.match(demo[0].repo.clone_url, /\/acme\/demo\.git$/);
  assert.ok(fake.requests.some((r) => r.path === '/api/v3/repos/acme/demo/branches/main'));
  const reads = fake.tokenRequests.slice(tokensBefore).map((r) => r.body).filter((b) => b.permissions?.contents === 'read');
  assert.deepEqual(reads.find((b) => b.repositories[0] === 'demo'), { repositories: ['demo'], permissions: { contents: 'read' } });
  assert.ok(!provider.builds.some((b) => b.repo.name === 'web'), 'acme/web is not installed: its head cannot be read');

  // The next run hears that the build is ready; the head was just checked, so nothing else is asked.
  await cron();
  assert.equal(provider.builds.filter((b) => b.repo.name === 'demo').length, 1);
  const alice = await createUser(ctx.server, 'Imaged', { repos: ['acme/*'] });
  const repos = await api(ctx.server).get('/v1/repos', { key: alice.key });
  const image = repos.json.repos.find((r) => r.name === 'acme/demo').image;
  assert.equal(image.status, 'ready', JSON.stringify(image));
  assert.equal(image.commit, head);
  assert.equal(repos.json.repos.find((r) => r.name === 'acme/web').image, null);

  const n = provider.creates.length + 1;
  await createSession(ctx.server, alice, { prompt: 'from the image' });
  const create = await nthCreate(provider, n);
  assert.equal(create.image_id, `img-${demo[0].build_id}`);
});
