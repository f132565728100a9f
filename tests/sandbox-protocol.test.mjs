// The room's side of the sandbox protocol (PROTOCOL.md sections 3 and 5), with a recording
// provider at the network boundary and the test itself dialling in as the bridge, so it can
// hold sandbox tokens and send exactly the frames it wants.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, test } from 'node:test';
import { allEvents, api, createSession, createUser, eventually, rid, roomOfTwo, sleep, useServer } from './support/server.mjs';
import { dialBridge, nthCreate, startRecordingProvider } from './support/sandbox.mjs';

const secret = randomBytes(24).toString('base64url');
let provider;

const ctx = useServer({
  vars: async () => {
    provider = await startRecordingProvider({ secret });
    return {
      PROVIDER: 'local',
      PROVIDER_URL: provider.url,
      PROVIDER_SECRET: secret,
      SANDBOX_HEARTBEAT_TIMEOUT_SECONDS: '3',
    };
  },
  cleanup: async () => {
    if (provider) {
      provider.down = false;
      provider.failDeletes = false;
    }
  },
});

after(() => provider?.stop());

/** How many ack ids the rooms' SQLite databases (under the server's persisted state) hold for a sandbox. */
function storedAcks(sandboxId) {
  let n = 0;
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(file);
      else if (entry.name.endsWith('.sqlite')) {
        const db = new DatabaseSync(file, { readOnly: true });
        try {
          n += db.prepare('SELECT COUNT(*) AS n FROM acks WHERE sandbox_id = ?').get(sandboxId).n;
        } catch {
          // not a room's database
        } finally {
          db.close();
        }
      }
    }
  };
  walk(path.join(ctx.server.persistDir, 'v3', 'do'));
  return n;
}

/** Dials in as the sandbox of `create`, says ready, and keeps heartbeats going. */
async function bridgeFor(create, { heartbeats = true } = {}) {
  const bridge = ctx.clients.add(await dialBridge(ctx.server, create.session_id, { token: create.sandbox_token, sandboxId: create.sandbox_id }));
  bridge.send({ type: 'ready', sandbox_id: create.sandbox_id, agent: 'test', agent_version: '1' });
  if (heartbeats) {
    const timer = setInterval(() => bridge.isOpen && bridge.send({ type: 'heartbeat' }), 500);
    bridge.closed.then(() => clearInterval(timer));
    bridge.goSilent = () => clearInterval(timer);
  }
  return bridge;
}

const eventOf = (type, pred = () => true) => (f) => f.type === type && typeof f.seq === 'number' && pred(f);

describe('asking the provider', () => {
  test('a prompt asks the provider for a sandbox with a signed request that carries no coordinator secret', async () => {
    const before = provider.creates.length;
    const { alice, created, sid } = await roomOfTwo(ctx.server, 'spawn');
    const { client } = await ctx.connect(sid, created.token, 0);
    client.send({ type: 'prompt', content: 'hello', client_request_id: rid() });
    await client.waitFor(eventOf('sandbox_status', (f) => f.status === 'spawning'));
    const create = await nthCreate(provider, before + 1);
    assert.equal(create.session_id, sid);
    assert.match(create.sandbox_id, /^sbx_/);
    assert.equal(create.coordinator_url, ctx.server.url);
    assert.deepEqual(create.repo, { owner: 'acme', name: 'demo', branch: 'main' });
    assert.ok(create.sandbox_token.length >= 32);
    assert.deepEqual(create.env, {});
    const body = JSON.stringify(create);
    for (const value of [ctx.server.adminKey, ctx.server.tokenSecret, secret, alice.key]) {
      assert.ok(!body.includes(value), 'a coordinator secret reached the provider');
    }
    assert.equal(provider.unsigned, 0);
    // The sandbox token is never shown to participants.
    const events = await allEvents(ctx.server, alice, sid);
    assert.ok(!JSON.stringify(events).includes(create.sandbox_token));
    const state = await ctx.http.get(`/v1/sessions/${sid}`, { key: alice.key });
    assert.equal(state.json.sandbox.status, 'spawning');
    assert.ok(!state.text.includes(create.sandbox_token));
  });
});

describe('the bridge socket', () => {
  test('wrong, foreign and ended sandbox tokens get 401, 403 and 410', async () => {
    const before = provider.creates.length;
    const { alice, created, sid } = await roomOfTwo(ctx.server, 'tokens');
    await api(ctx.server).post(`/v1/sessions/${sid}/prompts`, { key: alice.key, body: { content: 'one' } });
    const create = await nthCreate(provider, before + 1);

    const refused = async (options) => {
      try {
        const c = await dialBridge(ctx.server, sid, options);
        c.close();
        return 'opened';
      } catch (err) {
        return err.status;
      }
    };
    assert.equal(await refused({}), 401);
    assert.equal(await refused({ token: 'not-a-sandbox-token', sandboxId: create.sandbox_id }), 401);
    assert.equal(await refused({ token: create.sandbox_token, sandboxId: 'sbx_someoneelse' }), 403);
    // Another session's room does not know this token at all.
    const other = await createSession(ctx.server, alice, { title: 'other' });
    assert.equal(
      await (async () => {
        try {
          const c = await dialBridge(ctx.server, other.session.id, { token: create.sandbox_token, sandboxId: create.sandbox_id });
          c.close();
          return 'opened';
        } catch (err) {
          return err.status;
        }
      })(),
      401,
    );

    // The right token opens; a newer connection replaces the older one.
    const first = await bridgeFor(create);
    const second = await bridgeFor(create);
    const replaced = await first.waitClose(5_000);
    assert.equal(replaced?.code, 4000);
    assert.ok(second.isOpen);
    // The new connection did not say it had the running prompt, so the room sends it again.
    assert.equal((await second.waitFor((f) => f.type === 'prompt')).content, 'one');

    // Archiving ends the sandbox: the bridge is told to shut down, and its token is now 410.
    const shutdown = second.waitFor((f) => f.type === 'shutdown', 10_000);
    assert.equal((await ctx.http.del(`/v1/sessions/${sid}`, { key: alice.key })).status, 200);
    await shutdown;
    assert.equal(await refused({ token: create.sandbox_token, sandboxId: create.sandbox_id }), 410);
    await eventually(() => provider.deletes.includes(create.sandbox_id), { what: 'the provider was asked to delete the sandbox' });
  });

  test('a prompt reaches the bridge with its author and selections; frames become events for everyone', async () => {
    const before = provider.creates.length;
    const { alice, bob, created, sid } = await roomOfTwo(ctx.server, 'stream');
    const { client: aliceSocket } = await ctx.connect(sid, created.token, 0);
    const bobToken = (await ctx.http.post(`/v1/sessions/${sid}/tokens`, { key: bob.key })).json.token;
    const { client: bobSocket } = await ctx.connect(sid, bobToken, 0);

    const selection = await ctx.http.post(`/v1/sessions/${sid}/selections`, {
      key: bob.key,
      body: { url: 'https://app.example.com/', title: 'App', viewport: { width: 800, height: 600 }, elements: [{ tag: 'div', classes: ['card'], id: 'revenue', text: 'Revenue', rect: { x: 1, y: 2, width: 30, height: 40 }, selector: '#revenue' }] },
    });
    assert.equal(selection.status, 201);
    bobSocket.send({ type: 'prompt', content: 'fix the card', client_request_id: rid(), selection_ids: [selection.json.artifact_id] });
    const create = await nthCreate(provider, before + 1);
    const bridge = await bridgeFor(create);
    const job = await bridge.waitFor((f) => f.type === 'prompt');
    assert.equal(job.content, 'fix the card');
    assert.equal(job.author.name, 'Bob');
    assert.match(job.author.email, /@example\.com$/);
    assert.equal(job.context.selections.length, 1);
    assert.equal(job.context.selections[0].elements[0].text, 'Revenue');
    assert.equal(job.context.selections[0].artifact_id, selection.json.artifact_id);

    const m = job.message_id;
    const deltas = Array.from({ length: 300 }, (_, i) => `w${i} `);
    for (const delta of deltas) bridge.send({ type: 'token', message_id: m, delta });
    bridge.send({ type: 'tool_call', message_id: m, call_id: 'c1', tool: 'bash', status: 'running', input: { command: 'ls' }, ack_id: 'a1' });
    bridge.send({ type: 'tool_call', message_id: m, call_id: 'c1', tool: 'bash', status: 'completed', output: 'README.md', ack_id: 'a2' });
    // A critical frame sent again after a reconnect is acknowledged but not stored twice.
    bridge.send({ type: 'tool_call', message_id: m, call_id: 'c1', tool: 'bash', status: 'completed', output: 'README.md', ack_id: 'a2' });
    bridge.send({ type: 'file_edit', message_id: m, path: 'src/card.css', diff: '+overflow: hidden;', ack_id: 'a3' });
    bridge.send({ type: 'artifact', message_id: m, artifact: { type: 'pr', data: { url: 'https://example.com/pr/1' } }, ack_id: 'a4' });
    bridge.send({ type: 'done', message_id: m, ok: true, ack_id: 'a5' });
    await bridge.waitForCount((f) => f.type === 'ack', 6);
    assert.deepEqual(bridge.frames.filter((f) => f.type === 'ack').map((f) => f.ack_id), ['a1', 'a2', 'a2', 'a3', 'a4', 'a5']);

    for (const socket of [aliceSocket, bobSocket]) {
      await socket.waitFor(eventOf('prompt_finished', (f) => f.message_id === m));
    }
    const events = (await allEvents(ctx.server, alice, sid)).filter((e) => e.message_id === m || e.artifact?.message_id === m);
    const types = events.map((e) => e.type).filter((t, i, all) => t !== all[i - 1]);
    assert.deepEqual(types, ['message', 'prompt_started', 'token', 'tool_call', 'file_edit', 'artifact_created', 'prompt_finished']);
    // Token text is stored as deltas: together they are the text, each exactly once.
    const text = events.filter((e) => e.type === 'token').map((e) => e.delta).join('');
    assert.equal(text, deltas.join(''));
    assert.equal(events.filter((e) => e.type === 'tool_call').length, 2);
    assert.equal(events.at(-1).status, 'completed');
    // Both participants saw the same events in the same order.
    const seen = (socket) => socket.events().filter((e) => e.message_id === m).map((e) => e.seq);
    assert.deepEqual(seen(aliceSocket), seen(bobSocket));

    // With nothing waiting, the sandbox is snapshotted and becomes idle.
    await aliceSocket.waitFor(eventOf('sandbox_status', (f) => f.status === 'idle'), 10_000);
    assert.ok(provider.snapshots.includes(create.sandbox_id));
  });

  test('stop asks the bridge to abort and the prompt finishes as cancelled', async () => {
    const before = provider.creates.length;
    const { alice, created, sid } = await roomOfTwo(ctx.server, 'stop');
    const { client } = await ctx.connect(sid, created.token, 0);
    assert.equal((await ctx.http.post(`/v1/sessions/${sid}/stop`, { key: alice.key })).json.error.code, 'not_found');
    client.send({ type: 'prompt', content: 'long task', client_request_id: rid() });
    const bridge = await bridgeFor(await nthCreate(provider, before + 1));
    const job = await bridge.waitFor((f) => f.type === 'prompt');
    bridge.send({ type: 'token', message_id: job.message_id, delta: 'working…' });
    client.send({ type: 'stop' });
    const stop = await bridge.waitFor((f) => f.type === 'stop');
    assert.equal(stop.message_id, job.message_id);
    bridge.send({ type: 'done', message_id: job.message_id, ok: false, error: 'stopped', ack_id: 'd1' });
    const finished = await client.waitFor(eventOf('prompt_finished'));
    assert.equal(finished.status, 'cancelled');
  });

  test('a silent sandbox fails after the heartbeat timeout; the next prompt gets a new sandbox restored from the snapshot', async () => {
    const before = provider.creates.length;
    const { alice, created, sid } = await roomOfTwo(ctx.server, 'stale');
    const { client } = await ctx.connect(sid, created.token, 0);
    client.send({ type: 'prompt', content: 'first', client_request_id: rid() });
    const firstCreate = await nthCreate(provider, before + 1);
    const first = await bridgeFor(firstCreate);
    const job = await first.waitFor((f) => f.type === 'prompt');
    // The first prompt of a session has nothing before it; every prompt names its memory.
    assert.equal(job.context.transcript, undefined);
    assert.deepEqual(job.context.memory, { repo: 'acme/demo', owner: alice.id });
    first.send({ type: 'token', message_id: job.message_id, delta: 'did the first thing', offset: 0 });
    first.send({ type: 'tool_call', message_id: job.message_id, call_id: 'c1', tool: 'bash', status: 'running', input: { command: 'make' }, ack_id: 't1' });
    first.send({ type: 'tool_call', message_id: job.message_id, call_id: 'c1', tool: 'bash', status: 'completed', output: 'ok', ack_id: 't2' });
    first.send({ type: 'file_edit', message_id: job.message_id, path: 'src/first.rs', diff: '+x', ack_id: 'f1' });
    first.send({ type: 'done', message_id: job.message_id, ok: true, text_bytes: 19, ack_id: 'd1' });
    await client.waitFor(eventOf('sandbox_status', (f) => f.status === 'idle'));

    // The second prompt runs on the same sandbox, which then goes silent.
    client.send({ type: 'prompt', content: 'second', client_request_id: rid() });
    const second = await first.waitFor((f) => f.type === 'prompt' && f.content === 'second');
    assert.equal(second.context.transcript, undefined, 'the same sandbox knows the session already');
    first.goSilent();
    const failed = await client.waitFor(eventOf('prompt_finished', (f) => f.message_id === second.message_id), 15_000);
    assert.equal(failed.status, 'failed');
    assert.match(failed.error, /heartbeat/);
    await client.waitFor(eventOf('sandbox_status', (f) => f.status === 'failed'));
    assert.equal((await first.waitClose(5_000))?.code, 4010);

    // A third prompt asks for a new sandbox, restored from the snapshot of the first.
    client.send({ type: 'prompt', content: 'third', client_request_id: rid() });
    const nextCreate = await nthCreate(provider, before + 2);
    assert.notEqual(nextCreate.sandbox_id, firstCreate.sandbox_id);
    assert.match(nextCreate.snapshot_id, /^snap-/);
    const next = await bridgeFor(nextCreate);
    const third = await next.waitFor((f) => f.type === 'prompt');
    assert.equal(third.content, 'third');
    // The new sandbox's first prompt brings the session so far, most recent first.
    const transcript = third.context.transcript;
    assert.equal(transcript.omitted, 0);
    assert.deepEqual(transcript.prompts.map((p) => [p.content, p.status, p.author]), [['second', 'failed', 'Alice'], ['first', 'completed', 'Alice']]);
    const earliest = transcript.prompts[1];
    assert.equal(earliest.message_id, job.message_id);
    assert.equal(earliest.answer, 'did the first thing');
    assert.deepEqual(earliest.tool_calls, [{ tool: 'bash', status: 'completed', input: '{"command":"make"}' }]);
    assert.deepEqual(earliest.files_edited, ['src/first.rs']);
    // A newer connection of the same sandbox, before the prompt ran, gets it again with the same transcript.
    const again = await bridgeFor(nextCreate);
    const resent = await again.waitFor((f) => f.type === 'prompt');
    assert.equal(resent.message_id, third.message_id);
    assert.deepEqual(resent.context.transcript, transcript);
    again.send({ type: 'done', message_id: third.message_id, ok: true, ack_id: 'd3' });
    await client.waitFor(eventOf('prompt_finished', (f) => f.message_id === third.message_id));
    client.send({ type: 'prompt', content: 'fourth', client_request_id: rid() });
    const fourth = await again.waitFor((f) => f.type === 'prompt' && f.content === 'fourth');
    assert.equal(fourth.context.transcript, undefined, 'only the first prompt of a sandbox carries it');
    const state = await ctx.http.get(`/v1/sessions/${sid}`, { key: alice.key });
    assert.equal(state.json.sandbox.id, nextCreate.sandbox_id);
    assert.equal(state.json.sandbox.restored_from, nextCreate.snapshot_id);
  });
});

describe('a provider that fails', () => {
  test('a failure is reported, retried with back-off, and the prompt runs once the provider is back', async () => {
    const { created, sid } = await roomOfTwo(ctx.server, 'down');
    const { client } = await ctx.connect(sid, created.token, 0);
    provider.down = true;
    const before = provider.creates.length;
    client.send({ type: 'prompt', content: 'patience', client_request_id: rid() });
    const error = await client.waitFor(eventOf('session_error'), 10_000);
    assert.equal(error.code, 'provider_error');
    assert.match(error.message, /trying again in 2 s/);
    provider.down = false;
    const create = await nthCreate(provider, before + 1, 15_000);
    const bridge = await bridgeFor(create);
    assert.equal((await bridge.waitFor((f) => f.type === 'prompt')).content, 'patience');
  });

  test('a delete the provider answers with 500 is tried again with back-off, not at once; the ended sandbox\u2019s acks are pruned', async () => {
    const before = provider.creates.length;
    const { created, sid } = await roomOfTwo(ctx.server, 'delete fails');
    const { client } = await ctx.connect(sid, created.token, 0);
    client.send({ type: 'prompt', content: 'then go quiet', client_request_id: rid() });
    const create = await nthCreate(provider, before + 1);
    const bridge = await bridgeFor(create);
    const job = await bridge.waitFor((f) => f.type === 'prompt');
    // An acknowledged frame: the room keeps its ack id while the sandbox lives, and forgets it
    // when the sandbox ends.
    bridge.send({ type: 'tool_call', message_id: job.message_id, call_id: 'c1', tool: 'bash', status: 'running', ack_id: 'kept-1' });
    await bridge.waitFor((f) => f.type === 'ack' && f.ack_id === 'kept-1');
    assert.equal(storedAcks(create.sandbox_id), 1);
    provider.failDeletes = true;
    // Found stale after the heartbeat timeout (3 s here): the room snapshots and deletes it.
    bridge.goSilent();
    const attempts = () => provider.deleteAttempts.filter((a) => a.sandbox_id === create.sandbox_id);
    await eventually(() => attempts().length >= 2, { ms: 15_000, what: 'a second delete' });
    assert.equal(storedAcks(create.sandbox_id), 0, 'the ended sandbox\u2019s acks are pruned');
    const [first, second] = attempts();
    // The first retry waits its back-off (2 s), and the next one longer (8 s): no third yet.
    assert.ok(second.at - first.at >= 1_500, `retried after ${second.at - first.at} ms`);
    await sleep(2_000);
    assert.equal(attempts().length, 2, JSON.stringify(attempts()));
    assert.ok(!provider.deletes.includes(create.sandbox_id));
  });

  test('three failures in five minutes fail the waiting prompts with the reason', async () => {
    const { created, sid } = await roomOfTwo(ctx.server, 'gives up');
    const { client } = await ctx.connect(sid, created.token, 0);
    provider.down = true;
    client.send({ type: 'prompt', content: 'doomed', client_request_id: rid() });
    const finished = await client.waitFor(eventOf('prompt_finished'), 30_000);
    assert.equal(finished.status, 'failed');
    assert.match(finished.error, /3 times in 5 minutes/);
    assert.match(finished.error, /the provider is down for a test/);
    assert.equal(client.events().filter((f) => f.type === 'session_error').length, 3);
  });
});

test('the local provider is refused outside ENV=development', async () => {
  const { startServer } = await import('./support/server.mjs');
  const server = await startServer({ vars: { ENV: 'production', PROVIDER: 'local', PROVIDER_URL: provider.url, PROVIDER_SECRET: secret } });
  try {
    const health = await api(server).get('/health');
    assert.equal(health.json.provider, 'local');
    assert.match(health.json.provider_detail, /ENV=development/);
    const alice = await createUser(server, 'Alice', { repos: ['*'] });
    const before = provider.creates.length;
    const created = await createSession(server, alice, { prompt: 'run this' });
    const events = await eventually(async () => {
      const all = await allEvents(server, alice, created.session.id);
      return all.some((e) => e.type === 'prompt_finished') && all;
    });
    assert.equal(events.find((e) => e.type === 'session_error').code, 'provider_error');
    assert.match(events.find((e) => e.type === 'prompt_finished').error, /refused unless ENV=development/);
    await sleep(200);
    assert.equal(provider.creates.length, before);
  } finally {
    await server.stop();
  }
});
