// End to end: the Worker in workerd, the real local provider (`bridge provider`) and a real
// `bridge run` per sandbox driving the built-in `dev` agent in a scratch git workspace.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { allEvents, api, createUser, createSession, addMember, freePort, mintToken, rid, roomOfTwo, sleep, useServer } from './support/server.mjs';
import { startLocalProvider } from './support/sandbox.mjs';

const secret = randomBytes(24).toString('base64url');
let providerPort;
let provider = null;

const ctx = useServer({
  vars: async () => {
    providerPort = await freePort();
    return {
      PROVIDER: 'local',
      PROVIDER_URL: `http://127.0.0.1:${providerPort}`,
      PROVIDER_SECRET: secret,
      SANDBOX_HEARTBEAT_TIMEOUT_SECONDS: '4',
    };
  },
});

async function ensureProvider() {
  provider ??= await startLocalProvider({ port: providerPort, secret, env: { HEARTBEAT_SECS: '1' } });
  return provider;
}

after(async () => {
  await provider?.stop();
});

const isEvent = (type, pred = () => true) => (f) => f.type === type && typeof f.seq === 'number' && pred(f);

/** The events of one prompt, from a socket's frames. */
const eventsOf = (client, messageId) => client.events().filter((e) => e.message_id === messageId);

/** The pid of the session's bridge process, from the provider id the local provider gives. */
async function bridgePid(user, sid) {
  const state = await api(ctx.server).get(`/v1/sessions/${sid}`, { key: user.key });
  const match = /^local-(\d+)$/.exec(state.json.sandbox?.provider_id ?? '');
  assert.ok(match, `no local provider id in ${JSON.stringify(state.json.sandbox)}`);
  return Number(match[1]);
}

function signal(pid, name) {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

describe('with the dev agent', () => {
  test('a prompt streams tokens, a tool call and a file edit to three participants and completes', async () => {
    await ensureProvider();
    const { alice, bob, created, sid } = await roomOfTwo(ctx.server, 'three');
    const carol = await createUser(ctx.server, 'Carol', { repos: ['acme/*'] });
    await addMember(ctx.server, alice, sid, carol);
    const sockets = [
      (await ctx.connect(sid, created.token, 0)).client,
      (await ctx.connect(sid, (await mintToken(ctx.server, bob, sid)).token, 0)).client,
      (await ctx.connect(sid, (await mintToken(ctx.server, carol, sid)).token, 0)).client,
    ];
    sockets[1].send({ type: 'prompt', content: 'make notes\n$ ls -a\nwrite notes.txt: hello from Bob', client_request_id: rid() });
    const ack = await sockets[1].waitFor((f) => f.type === 'prompt_ack');
    for (const socket of sockets) {
      await socket.waitFor(isEvent('prompt_finished', (f) => f.message_id === ack.message_id), 60_000);
    }
    const events = eventsOf(sockets[0], ack.message_id);
    const finished = events.at(-1);
    assert.equal(finished.type, 'prompt_finished');
    assert.equal(finished.status, 'completed', JSON.stringify(finished));
    assert.equal(events.find((e) => e.type === 'message').author.name, 'Bob');
    assert.ok(events.filter((e) => e.type === 'token').map((e) => e.delta).join('').length > 0);
    const tools = events.filter((e) => e.type === 'tool_call');
    assert.deepEqual(tools.map((t) => t.status), ['running', 'completed']);
    assert.deepEqual(tools[0].input, { command: 'ls -a' });
    assert.match(tools[1].output, /\.git/);
    const edit = events.find((e) => e.type === 'file_edit');
    assert.equal(edit.path, 'notes.txt');
    // All three saw exactly the same events, in the same order.
    const seqsOf = (socket) => eventsOf(socket, ack.message_id).map((e) => e.seq);
    assert.deepEqual(seqsOf(sockets[1]), seqsOf(sockets[0]));
    assert.deepEqual(seqsOf(sockets[2]), seqsOf(sockets[0]));
    // The work was done in the sandbox's workspace, committed under the author's name.
    const sandbox = (await api(ctx.server).get(`/v1/sessions/${sid}`, { key: alice.key })).json.sandbox;
    assert.equal(readFileSync(`${provider.workspaces}/${sandbox.id}/notes.txt`, 'utf8'), 'hello from Bob\n');
  });

  test('two prompts queue and run in order', async () => {
    await ensureProvider();
    const { created, sid } = await roomOfTwo(ctx.server, 'queue');
    const { client } = await ctx.connect(sid, created.token, 0);
    client.send({ type: 'prompt', content: 'first\nsleep 500', client_request_id: 'q1' });
    client.send({ type: 'prompt', content: 'second', client_request_id: 'q2' });
    const acks = await client.waitForCount((f) => f.type === 'prompt_ack', 2);
    const [first, second] = acks.map((a) => a.message_id);
    assert.deepEqual(acks.map((a) => a.position), [1, 2]);
    await client.waitFor(isEvent('prompt_finished', (f) => f.message_id === second), 60_000);
    const order = client
      .events()
      .filter((e) => e.type === 'prompt_started' || e.type === 'prompt_finished')
      .map((e) => `${e.type === 'prompt_started' ? 'start' : 'finish'} ${e.message_id === first ? 1 : 2}`);
    assert.deepEqual(order, ['start 1', 'finish 1', 'start 2', 'finish 2']);
  });

  test('stop aborts the running prompt, which finishes as cancelled; the next prompt runs', async () => {
    await ensureProvider();
    const { created, sid } = await roomOfTwo(ctx.server, 'stop');
    const { client } = await ctx.connect(sid, created.token, 0);
    client.send({ type: 'prompt', content: 'wait a long time\n$ sleep 30', client_request_id: rid() });
    const ack = await client.waitFor((f) => f.type === 'prompt_ack');
    await client.waitFor(isEvent('tool_call', (f) => f.message_id === ack.message_id && f.status === 'running'), 60_000);
    client.send({ type: 'stop' });
    const finished = await client.waitFor(isEvent('prompt_finished', (f) => f.message_id === ack.message_id), 20_000);
    assert.equal(finished.status, 'cancelled');
    client.send({ type: 'prompt', content: 'after the stop', client_request_id: rid() });
    const next = (await client.waitForCount((f) => f.type === 'prompt_ack', 2))[1];
    const done = await client.waitFor(isEvent('prompt_finished', (f) => f.message_id === next.message_id), 30_000);
    assert.equal(done.status, 'completed');
  });

  test('a bridge killed mid-prompt and started again loses and repeats no critical frame', async () => {
    await ensureProvider();
    const { alice, created, sid } = await roomOfTwo(ctx.server, 'kill');
    const { client } = await ctx.connect(sid, created.token, 0);
    client.send({ type: 'prompt', content: 'two steps\n$ echo one\nwrite a.txt: A\nsleep 20000\n$ echo never', client_request_id: rid() });
    const ack = await client.waitFor((f) => f.type === 'prompt_ack');
    await client.waitFor(isEvent('file_edit', (f) => f.message_id === ack.message_id), 60_000);
    const pid = await bridgePid(alice, sid);
    signal(pid, 'SIGKILL');
    // The provider starts the bridge again in the same workspace; it re-sends what the room
    // had not acknowledged and reports the interrupted prompt.
    const finished = await client.waitFor(isEvent('prompt_finished', (f) => f.message_id === ack.message_id), 60_000);
    assert.equal(finished.status, 'failed');
    assert.match(finished.error, /restart|interrupt/i);
    const events = (await allEvents(ctx.server, alice, sid)).filter((e) => e.message_id === ack.message_id);
    const critical = events
      .filter((e) => ['tool_call', 'file_edit', 'prompt_finished'].includes(e.type))
      .map((e) => (e.type === 'tool_call' ? `tool_call ${e.call_id} ${e.status}` : e.type === 'file_edit' ? `file_edit ${e.path}` : e.type));
    // Each frame exactly once: the command before the kill, its edit, and the finish.
    assert.equal(new Set(critical).size, critical.length, critical.join(', '));
    assert.deepEqual(critical.map((s) => s.replace(/^tool_call \S+ /, 'tool_call ')), [
      'tool_call running',
      'tool_call completed',
      'file_edit a.txt',
      'prompt_finished',
    ]);
    // The sandbox carries on with the next prompt.
    client.send({ type: 'prompt', content: '$ cat a.txt', client_request_id: rid() });
    const next = (await client.waitForCount((f) => f.type === 'prompt_ack', 2))[1];
    await client.waitFor(isEvent('prompt_finished', (f) => f.message_id === next.message_id && f.status === 'completed'), 60_000);
    const output = eventsOf(client, next.message_id).find((e) => e.type === 'tool_call' && e.status === 'completed').output;
    assert.match(output, /A/);
  });

  test('a frozen bridge is found stale by its heartbeats; the next prompt gets a sandbox restored from the snapshot', async () => {
    await ensureProvider();
    const { alice, created, sid } = await roomOfTwo(ctx.server, 'frozen');
    const { client } = await ctx.connect(sid, created.token, 0);
    client.send({ type: 'prompt', content: 'write kept.txt: survives', client_request_id: rid() });
    const first = await client.waitFor((f) => f.type === 'prompt_ack');
    await client.waitFor(isEvent('sandbox_status', (f) => f.status === 'idle'), 60_000);
    const firstSandbox = (await api(ctx.server).get(`/v1/sessions/${sid}`, { key: alice.key })).json.sandbox;
    const pid = await bridgePid(alice, sid);
    signal(pid, 'SIGSTOP');
    try {
      client.send({ type: 'prompt', content: 'never answered', client_request_id: rid() });
      const frozen = (await client.waitForCount((f) => f.type === 'prompt_ack', 2))[1];
      const failed = await client.waitFor(isEvent('prompt_finished', (f) => f.message_id === frozen.message_id), 30_000);
      assert.equal(failed.status, 'failed');
      assert.match(failed.error, /no heartbeat/);
    } finally {
      signal(pid, 'SIGCONT');
    }
    client.send({ type: 'prompt', content: '$ cat kept.txt', client_request_id: rid() });
    const third = (await client.waitForCount((f) => f.type === 'prompt_ack', 3))[2];
    await client.waitFor(isEvent('prompt_finished', (f) => f.message_id === third.message_id), 60_000);
    const sandbox = (await api(ctx.server).get(`/v1/sessions/${sid}`, { key: alice.key })).json.sandbox;
    assert.notEqual(sandbox.id, firstSandbox.id);
    assert.ok(sandbox.restored_from, 'the new sandbox was restored from a snapshot');
    const output = eventsOf(client, third.message_id).find((e) => e.type === 'tool_call' && e.status === 'completed').output;
    assert.match(output, /survives/);
    assert.ok(first.message_id);
  });
});

test('a provider that is down: session_error, then the prompt runs once it is back', async () => {
  // A coordinator of its own, pointed at a port where nothing listens yet.
  const { startServer } = await import('./support/server.mjs');
  const port = await freePort();
  const server = await startServer({ vars: { PROVIDER: 'local', PROVIDER_URL: `http://127.0.0.1:${port}`, PROVIDER_SECRET: secret } });
  let late = null;
  try {
    const alice = await createUser(server, 'Alice', { repos: ['*'] });
    const created = await createSession(server, alice, { title: 'late provider' });
    const { Client } = await import('./support/server.mjs');
    const client = await Client.connect(`${created.ws_url}&since=0`);
    client.send({ type: 'prompt', content: 'patience', client_request_id: rid() });
    const ack = await client.waitFor((f) => f.type === 'prompt_ack');
    const error = await client.waitFor(isEvent('session_error'), 15_000);
    assert.equal(error.code, 'provider_error');
    assert.match(error.message, /could not be reached/);
    late = await startLocalProvider({ port, secret });
    const finished = await client.waitFor(isEvent('prompt_finished', (f) => f.message_id === ack.message_id), 60_000);
    assert.equal(finished.status, 'completed');
    client.close();
  } finally {
    await late?.stop();
    await server.stop();
    await sleep(0);
  }
});
