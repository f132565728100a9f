// The warm pool end to end: the Worker in workerd with WARM_POOL, its cron fired through
// `wrangler dev --test-scheduled`, the real local provider and real bridges with the `dev`
// agent, and the local git host. A warm sandbox holds no session secret until a session
// claims it; a stale or retired one never serves; with the pool empty the cold path works;
// the first `typing` starts a sandbox before any prompt.
//
// Slow by nature (workerd, a provider, bridges, git); every wait is for an event or a file.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { allEvents, api, createUser, d1Execute, eventually, fireCron, freePort, rid, useServer } from './support/server.mjs';
import { makeBareRepo } from './support/git-http.mjs';
import { startLocalProvider } from './support/sandbox.mjs';

const secret = randomBytes(24).toString('base64url');
const providerPort = await freePort();
const gitRoot = await mkdtemp(path.join(os.tmpdir(), 'warm-git-'));
makeBareRepo(gitRoot, 'acme/demo');
let provider = null;

const ctx = useServer({
  vars: {
    PROVIDER: 'local',
    PROVIDER_URL: `http://127.0.0.1:${providerPort}`,
    PROVIDER_SECRET: secret,
    GIT_HOST: `http://127.0.0.1:${providerPort}/git`,
    WARM_POOL: JSON.stringify({ 'acme/demo': 1 }),
    SANDBOX_HEARTBEAT_TIMEOUT_SECONDS: '10',
  },
});

before(async () => {
  provider = await startLocalProvider({ port: providerPort, secret, gitRoot, env: { HEARTBEAT_SECS: '1' } });
});

after(async () => {
  await provider?.stop();
  await rm(gitRoot, { recursive: true, force: true });
});

/** The warm pool's rows in D1. */
const poolRows = () => d1Execute(ctx.server.persistDir, 'SELECT id, status, session_id, created_at, deleted FROM warm_sandboxes ORDER BY created_at');

/** Waits for a warm row other than `except` and returns it. */
async function nextWarm(except = []) {
  return eventually(async () => (await poolRows()).find((r) => r.status === 'warm' && !except.includes(r.id)), { ms: 30_000, what: 'a warm sandbox in D1' });
}

/** The pid of a sandbox's bridge, from the provider's log. */
function bridgePidOf(sandboxId) {
  const match = new RegExp(`sandbox ${sandboxId}: bridge pid (\\d+)`).exec(provider.log());
  assert.ok(match, `no bridge pid for ${sandboxId} in the provider's log`);
  return Number(match[1]);
}

/** A process's environment, as /proc shows it (the test runs as root; the bridge is not dumpable). */
function environOf(pid) {
  return Object.fromEntries(
    readFileSync(`/proc/${pid}/environ`, 'utf8')
      .split('\0')
      .filter(Boolean)
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}

/** The token folders of a sandbox in the provider's private `.tokens`, with their files. */
function tokenFolders(sandboxId) {
  const root = path.join(provider.workspaces, '.tokens');
  return readdirSync(root)
    .filter((name) => name.startsWith(`${sandboxId}-`))
    .map((name) => ({ name, files: readdirSync(path.join(root, name)) }));
}

const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function sessionState(user, sid) {
  const state = await api(ctx.server).get(`/v1/sessions/${sid}`, { key: user.key });
  assert.equal(state.status, 200, state.text);
  return state.json;
}

async function finishedPrompt(user, sid) {
  return eventually(async () => (await allEvents(ctx.server, user, sid)).find((e) => e.type === 'prompt_finished'), { ms: 60_000, what: 'the prompt finished' });
}

const readyOf = async (user, sid) =>
  eventually(async () => (await allEvents(ctx.server, user, sid)).find((e) => e.type === 'sandbox_status' && e.status === 'ready'), { ms: 60_000, what: 'the sandbox is ready' });

describe('the warm pool', { concurrency: false }, () => {
  let alice;

  test('with the pool empty, the first prompt starts a cold sandbox as before', { timeout: 90_000 }, async () => {
    alice = await createUser(ctx.server, 'Alice', { repos: ['acme/*'] });
    assert.deepEqual(await poolRows(), [], 'the cron has not run: the pool is empty');
    const created = await api(ctx.server).post('/v1/sessions', { key: alice.key, body: { repo: 'acme/demo', title: 'cold', prompt: 'hello cold' } });
    assert.equal(created.status, 201, created.text);
    const sid = created.json.session.id;
    const finished = await finishedPrompt(alice, sid);
    assert.equal(finished.status, 'completed', JSON.stringify(finished));
    const ready = await readyOf(alice, sid);
    assert.equal(ready.warm, undefined, 'a cold sandbox is not marked warm');
    const state = await sessionState(alice, sid);
    assert.equal(state.sandbox.warm, false);
  });

  test('a warm sandbox holds no session secret until a session claims it, then gets its session, token and credentials', { timeout: 120_000 }, async () => {
    await fireCron(ctx.server);
    const warm = await nextWarm();
    const pid = bridgePidOf(warm.id);
    // Before the claim: no session, no coordinator, no token anywhere the sandbox can read.
    const env = environOf(pid);
    for (const name of ['SESSION_ID', 'COORDINATOR_URL', 'SANDBOX_TOKEN', 'SANDBOX_TOKEN_FILE']) {
      assert.equal(env[name], undefined, `${name} is not in a warm bridge's environment`);
    }
    assert.ok(env.SANDBOX_ASSIGNMENT_FILE, 'the bridge waits for its assignment');
    assert.equal(existsSync(env.SANDBOX_ASSIGNMENT_FILE), false, 'no assignment yet');
    const folders = tokenFolders(warm.id);
    assert.equal(folders.length, 1);
    assert.deepEqual(folders[0].files, [], 'the token folder is empty');
    assert.equal(existsSync(path.join(provider.workspaces, '.owners', `sandbox-${warm.id}`)), false, 'it belongs to no session');
    const workspace = path.join(provider.workspaces, warm.id);
    assert.equal(existsSync(path.join(workspace, '.git')), false, 'nothing was cloned: that needs the session’s credentials');
    assert.doesNotMatch(provider.log(), new RegExp(`\\[${warm.id}\\] .*connecting to`), 'it has not dialled any room');

    // A session's creation claims it.
    const created = await api(ctx.server).post('/v1/sessions', { key: alice.key, body: { repo: 'acme/demo', title: 'warm' } });
    assert.equal(created.status, 201, created.text);
    const sid = created.json.session.id;
    const ready = await readyOf(alice, sid);
    assert.equal(ready.warm, true, JSON.stringify(ready));
    const state = await sessionState(alice, sid);
    assert.equal(state.sandbox.id, warm.id, 'the session got the warm sandbox');
    assert.equal(state.sandbox.warm, true);
    const claimed = (await poolRows()).find((r) => r.id === warm.id);
    assert.equal(claimed.status, 'claimed');
    assert.equal(claimed.session_id, sid);
    // After the claim: the session's own, read and deleted by the bridge.
    assert.equal(readFileSync(path.join(provider.workspaces, '.owners', `sandbox-${warm.id}`), 'utf8'), sid);
    assert.equal(existsSync(env.SANDBOX_ASSIGNMENT_FILE), false, 'the bridge deleted its assignment');
    await eventually(() => existsSync(path.join(workspace, '.git')), { ms: 20_000, what: 'the claimed sandbox cloned the repository with its credentials' });
    assert.equal(alive(pid), true, 'the same bridge serves the session');

    // A prompt runs on it, and its author's identity comes with it.
    const prompt = await api(ctx.server).post(`/v1/sessions/${sid}/prompts`, { key: alice.key, body: { content: 'write warm.txt: hi', client_request_id: rid() } });
    assert.equal(prompt.status, 202, prompt.text);
    const finished = await finishedPrompt(alice, sid);
    assert.equal(finished.status, 'completed', JSON.stringify(finished));
    assert.equal(readFileSync(path.join(workspace, 'warm.txt'), 'utf8').trim(), 'hi');

    // The claim refilled the pool without waiting for the cron.
    await nextWarm([warm.id]);
  });

  test('the first typing starts the sandbox before any prompt', { timeout: 90_000 }, async () => {
    // acme/web has no pool: typing starts a cold sandbox.
    const created = await api(ctx.server).post('/v1/sessions', { key: alice.key, body: { repo: 'acme/web', title: 'typing' } });
    assert.equal(created.status, 201, created.text);
    const sid = created.json.session.id;
    const { client } = await ctx.connect(sid, created.json.token, 0);
    assert.equal((await sessionState(alice, sid)).sandbox, null, 'no sandbox before typing');
    client.send({ type: 'typing' });
    await client.waitFor((f) => f.type === 'sandbox_status' && f.status === 'spawning', 20_000);
    await client.waitFor((f) => f.type === 'sandbox_status' && f.status === 'ready', 60_000);
    const events = await allEvents(ctx.server, alice, sid);
    assert.equal(events.filter((e) => e.type === 'message').length, 0, 'the sandbox started with no prompt sent');
    // More typing does not start another one.
    client.send({ type: 'typing' });
    client.send({ type: 'typing' });
    client.send({ type: 'prompt', content: 'after typing', client_request_id: rid() });
    const finished = await client.waitFor((f) => f.type === 'prompt_finished', 60_000);
    assert.equal(finished.status, 'completed', JSON.stringify(finished));
    const spawns = (await allEvents(ctx.server, alice, sid)).filter((e) => e.type === 'sandbox_status' && e.status === 'spawning');
    assert.equal(spawns.length, 1, 'one sandbox for the session');
  });

  test('a stale warm sandbox never serves; the cron retires it and starts a fresh one', { timeout: 120_000 }, async () => {
    const stale = await nextWarm();
    // As if it had waited past WARM_MAX_AGE_MINUTES (25 by default).
    await d1Execute(ctx.server.persistDir, `UPDATE warm_sandboxes SET created_at = created_at - 26 * 60000 WHERE id = '${stale.id}'`);
    const created = await api(ctx.server).post('/v1/sessions', { key: alice.key, body: { repo: 'acme/demo', title: 'stale', prompt: 'hello again' } });
    assert.equal(created.status, 201, created.text);
    const sid = created.json.session.id;
    const finished = await finishedPrompt(alice, sid);
    assert.equal(finished.status, 'completed', JSON.stringify(finished));
    const state = await sessionState(alice, sid);
    assert.notEqual(state.sandbox.id, stale.id, 'the stale one was not claimed');
    assert.equal(state.sandbox.warm, false, 'the prompt ran on a cold sandbox');
    assert.equal((await poolRows()).find((r) => r.id === stale.id).status, 'warm', 'untouched until the cron');

    const pid = bridgePidOf(stale.id);
    await fireCron(ctx.server);
    const retired = await eventually(async () => (await poolRows()).find((r) => r.id === stale.id && r.status === 'retired' && r.deleted === 1), { ms: 30_000, what: 'the stale sandbox retired and deleted' });
    assert.equal(retired.session_id, null);
    await eventually(() => !alive(pid), { ms: 15_000, what: 'its bridge ended' });
    await nextWarm([stale.id]);
  });

  test('a warm sandbox whose claim fails is retired and the session goes on cold', { timeout: 120_000 }, async () => {
    const warm = await nextWarm();
    // Its bridge ends (as if the machine under it went away); the provider then refuses the claim.
    const pid = bridgePidOf(warm.id);
    process.kill(pid, 'SIGTERM');
    await eventually(() => !alive(pid), { ms: 15_000, what: 'the warm bridge ended' });
    const created = await api(ctx.server).post('/v1/sessions', { key: alice.key, body: { repo: 'acme/demo', title: 'fallback', prompt: 'still works' } });
    assert.equal(created.status, 201, created.text);
    const sid = created.json.session.id;
    const finished = await finishedPrompt(alice, sid);
    assert.equal(finished.status, 'completed', JSON.stringify(finished));
    const state = await sessionState(alice, sid);
    assert.notEqual(state.sandbox.id, warm.id);
    assert.equal(state.sandbox.warm, false);
    await eventually(async () => (await poolRows()).find((r) => r.id === warm.id)?.status === 'retired', { ms: 15_000, what: 'the warm row retired' });
  });
});
