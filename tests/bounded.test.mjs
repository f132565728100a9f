// Bounded memory and fair use (PROTOCOL.md sections 1 to 3): replays, history frames and
// pages stop at about 1 MiB however large the events; a stored tool call or file edit keeps at
// most 64 KiB a field and the whole as an artifact fetched on demand; a critical bridge frame
// the room refuses is acknowledged with an agent_error, not left to come back forever;
// selections are rate-limited; a user holds at most 8 sockets and 8 streams on a session; an
// SSE reader that falls behind is cut off and resumes with Last-Event-ID.
// The test speaks as the bridge through a recording provider at the network boundary.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { after, describe, test } from 'node:test';
import { Client, allEvents, api, errorCode, mintToken, openSse, range, rid, roomOfTwo, seqs, sessionWsUrl, useServer } from './support/server.mjs';
import { dialBridge, nthCreate, startRecordingProvider } from './support/sandbox.mjs';

const MiB = 1024 * 1024;
const secret = randomBytes(24).toString('base64url');
let provider;
const streams = new Set();

const ctx = useServer({
  vars: async () => {
    provider = await startRecordingProvider({ secret });
    return { PROVIDER: 'local', PROVIDER_URL: provider.url, PROVIDER_SECRET: secret };
  },
  cleanup: () => {
    for (const s of streams) s.close();
    streams.clear();
  },
});

after(() => provider?.stop());

const eventOf = (type, pred = () => true) => (f) => f.type === type && typeof f.seq === 'number' && pred(f);

/** A session with a prompt running on a bridge the test plays. */
async function running(title) {
  const before = provider.creates.length;
  const room = await roomOfTwo(ctx.server, title);
  const { client } = await ctx.connect(room.sid, room.created.token, 0);
  client.send({ type: 'prompt', content: title, client_request_id: rid() });
  const ack = await client.waitFor((f) => f.type === 'prompt_ack');
  const create = await nthCreate(provider, before + 1);
  const bridge = ctx.clients.add(await dialBridge(ctx.server, create.session_id, { token: create.sandbox_token, sandboxId: create.sandbox_id }));
  bridge.send({ type: 'ready', sandbox_id: create.sandbox_id, agent: 'test', agent_version: '1' });
  await bridge.waitFor((f) => f.type === 'prompt' && f.message_id === ack.message_id);
  return { ...room, client, bridge, messageId: ack.message_id };
}

describe('stored events', () => {
  test('a large tool output and diff are cut at 64 KiB with truncated, and the whole is an artifact', async () => {
    const { alice, sid, client, bridge, messageId } = await running('big tool');
    const output = `${'o'.repeat(150_000)}é-the-end`;
    const diff = `+${'d'.repeat(200_000)}\n`;
    bridge.send({ type: 'tool_call', message_id: messageId, call_id: 'c1', tool: 'bash', status: 'completed', input: { command: 'cat big' }, output, ack_id: 'big-1' });
    bridge.send({ type: 'file_edit', message_id: messageId, path: 'big.txt', diff, ack_id: 'big-2' });
    await bridge.waitFor((f) => f.type === 'ack' && f.ack_id === 'big-2');
    const tool = await client.waitFor(eventOf('tool_call', (f) => f.call_id === 'c1'));
    const edit = await client.waitFor(eventOf('file_edit', (f) => f.path === 'big.txt'));
    assert.equal(tool.truncated, true);
    assert.equal(Buffer.byteLength(tool.output), 64 * 1024);
    assert.deepEqual(tool.input, { command: 'cat big' }, 'a small input stays as it is');
    assert.equal(edit.truncated, true);
    assert.equal(Buffer.byteLength(edit.diff), 64 * 1024);
    for (const [event, field, whole] of [[tool, 'output', output], [edit, 'diff', diff]]) {
      assert.match(event.artifact_id, /^art_/);
      const res = await api(ctx.server).get(`/v1/sessions/${sid}/artifacts/${event.artifact_id}`, { key: alice.key });
      assert.equal(res.status, 200, res.text.slice(0, 200));
      assert.equal(res.json.artifact.type, 'file');
      assert.equal(res.json.artifact.data[field], whole, `the whole ${field} is kept`);
    }
    // No event carries the whole.
    const events = await allEvents(ctx.server, alice, sid);
    assert.ok(events.every((e) => JSON.stringify(e).length < 80 * 1024));
    const missing = await api(ctx.server).get(`/v1/sessions/${sid}/artifacts/art_nope`, { key: alice.key });
    assert.equal(missing.status, 404);
  });

  test('a critical frame the room refuses is acknowledged once, with an agent_error', async () => {
    const { client, bridge, messageId } = await running('refused');
    const huge = 'x'.repeat(MiB + 10);
    bridge.send({ type: 'tool_call', message_id: messageId, call_id: 'c2', tool: 'bash', status: 'completed', output: huge, ack_id: 'huge-1' });
    await bridge.waitFor((f) => f.type === 'ack' && f.ack_id === 'huge-1');
    const error = await client.waitFor(eventOf('session_error'));
    assert.equal(error.code, 'agent_error');
    assert.match(error.message, /refused/);
    // Sent again (a reconnect): acknowledged again, no second event.
    bridge.send({ type: 'tool_call', message_id: messageId, call_id: 'c2', tool: 'bash', status: 'completed', output: huge, ack_id: 'huge-1' });
    await bridge.waitForCount((f) => f.type === 'ack' && f.ack_id === 'huge-1', 2);
    bridge.send({ type: 'heartbeat' });
    assert.equal(client.events().filter((e) => e.type === 'session_error').length, 1);
  });
});

describe('pages by bytes', () => {
  test('a join replays at most about 1 MiB of the newest events; history frames and pages stop at about 1 MiB', { timeout: 60_000 }, async () => {
    const { alice, created, sid, bridge, messageId } = await running('many bytes');
    // About 3 MiB of events: 48 tool calls of 60 KiB each (under the cap).
    for (let i = 0; i < 48; i++) {
      bridge.send({ type: 'tool_call', message_id: messageId, call_id: `c${i}`, tool: 'bash', status: 'completed', output: `${i}`.padEnd(60 * 1024, '.'), ack_id: `fill-${i}` });
    }
    await bridge.waitFor((f) => f.type === 'ack' && f.ack_id === 'fill-47', 30_000);
    const last = (await api(ctx.server).get(`/v1/sessions/${sid}`, { key: alice.key })).json.last_seq;
    const client = ctx.clients.add(await Client.connect(sessionWsUrl(ctx.server, sid, created.token, 0)));
    const welcome = await client.welcome();
    assert.ok(welcome.replay_from > 1, `the replay starts at the newest part (replay_from ${welcome.replay_from})`);
    assert.equal(welcome.recovered, true);
    await client.waitFor((f) => f.seq === last);
    assert.deepEqual(seqs(client.events()), range(welcome.replay_from, last), 'the replay is whole from replay_from on');
    const bytes = (list) => list.reduce((n, e) => n + Buffer.byteLength(JSON.stringify(e)), 0);
    const replayBytes = bytes(client.events());
    assert.ok(replayBytes <= 1.1 * MiB && replayBytes > 0.8 * MiB, `replayed ${replayBytes} bytes`);
    // What lies below comes a history page at a time, each about 1 MiB at most.
    client.send({ type: 'history', before_seq: welcome.replay_from, limit: 500 });
    const history = await client.waitFor((f) => f.type === 'history');
    assert.equal(history.has_more, true);
    assert.ok(bytes(history.events) <= 1.1 * MiB, `a history page of ${bytes(history.events)} bytes`);
    assert.equal(history.events.at(-1).seq, welcome.replay_from - 1);
    const page = await api(ctx.server).get(`/v1/sessions/${sid}/events?since=0&limit=1000`, { key: alice.key });
    assert.equal(page.json.has_more, true);
    assert.ok(Buffer.byteLength(page.text) <= 1.1 * MiB, `a page of ${Buffer.byteLength(page.text)} bytes`);
    assert.deepEqual(seqs(page.json.events), range(1, page.json.events.length));
    // An SSE replay sends a page and ends; Last-Event-ID takes it on from there.
    const sse = await openSse(`${ctx.server.url}/v1/sessions/${sid}/events`, { key: alice.key });
    streams.add(sse);
    assert.equal(sse.status, 200);
    await sse.waitFor(() => sse.ended, 20_000).catch(() => {});
    assert.ok(sse.ended, 'a replay over a page ends the stream');
    const lastId = Number(sse.events.at(-1).id);
    assert.ok(lastId < last);
    const next = await openSse(`${ctx.server.url}/v1/sessions/${sid}/events`, { key: alice.key, lastEventId: lastId });
    streams.add(next);
    await next.waitFor((e) => Number(e.id) === lastId + 1);
  });
});

/** An SSE request whose reader takes nothing until `resume()`; then the ids it got and whether it ended. */
function pausedSse(url, key) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { accept: 'text/event-stream', authorization: `Bearer ${key}` } }, (res) => {
      res.pause();
      let text = '';
      let ended = false;
      res.on('data', (d) => (text += d));
      res.on('end', () => (ended = true));
      res.on('error', () => (ended = true));
      resolve({
        status: res.statusCode,
        async resume(ms) {
          res.resume();
          const deadline = Date.now() + ms;
          while (!ended && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
          req.destroy();
          return { ended, ids: [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1])) };
        },
      });
    });
    req.on('error', reject);
  });
}

describe('slow readers', () => {
  test('an SSE reader that falls far behind is cut off, and resumes with Last-Event-ID', { timeout: 120_000 }, async () => {
    const { alice, sid, client, bridge, messageId } = await running('slow reader');
    const slow = await pausedSse(`${ctx.server.url}/v1/sessions/${sid}/events?since=0`, alice.key);
    assert.equal(slow.status, 200);
    // Far more than the 4 MiB a stream may hold for its reader, beyond what the sockets between
    // them buffer: 300 tool outputs of 60 KiB.
    const output = 'o'.repeat(60 * 1024);
    for (let i = 0; i < 300; i += 1) {
      bridge.send({ type: 'tool_call', message_id: messageId, call_id: `slow-${i}`, tool: 'bash', status: 'completed', output, ack_id: `slow-${i}` });
      if (i % 50 === 49) await bridge.waitFor((f) => f.type === 'ack' && f.ack_id === `slow-${i}`, 30_000);
    }
    const last = await client.waitFor(eventOf('tool_call', (f) => f.call_id === 'slow-299'), 30_000);
    const { ended, ids } = await slow.resume(15_000);
    assert.ok(ended, 'the slow reader\u2019s stream was ended');
    assert.ok(ids.length > 0 && ids.at(-1) < last.seq, `it got up to ${ids.at(-1)} of ${last.seq}`);
    // It comes back with the last id it saw and gets the rest, a page at a time, each once.
    const seen = [...ids];
    while (seen.at(-1) < last.seq) {
      const s = await openSse(`${ctx.server.url}/v1/sessions/${sid}/events`, { key: alice.key, lastEventId: seen.at(-1) });
      streams.add(s);
      assert.equal(s.status, 200, s.text);
      await s.waitFor((e) => Number(e.id) >= last.seq || s.ended, 15_000).catch(() => {});
      s.close();
      const got = s.events.map((e) => Number(e.id)).filter((id) => id > seen.at(-1));
      assert.ok(got.length > 0, 'each resume brings something new');
      seen.push(...got);
    }
    assert.deepEqual(seen, range(1, last.seq), 'every seq once, none missing');
  });
});

describe('fair use', () => {
  test('selections are rate-limited like prompts', async () => {
    const { alice, sid } = await roomOfTwo(ctx.server, 'selections');
    const selection = {
      url: 'https://app.example.com/dashboard',
      title: 'Dashboard',
      viewport: { width: 1280, height: 800 },
      elements: [{ tag: 'div', classes: ['card'], id: 'revenue', text: 'x'.repeat(90), rect: { x: 10, y: 20, width: 300, height: 120 }, selector: '#revenue' }],
    };
    // 40 in a burst: 10 fit the bucket (a few more may refill while the burst goes through).
    const results = await Promise.all(
      range(1, 40).map(() => api(ctx.server).post(`/v1/sessions/${sid}/selections`, { key: alice.key, body: selection })),
    );
    const statuses = results.map((res) => (res.status === 429 ? errorCode(res) : res.status));
    const accepted = statuses.filter((s) => s === 201).length;
    assert.ok(accepted >= 10 && accepted <= 13, statuses.join(','));
    assert.equal(statuses.filter((s) => s === 'rate_limited').length, 40 - accepted, statuses.join(','));
  });

  test('a user holds at most 8 sockets and 8 event streams on a session', async () => {
    const { alice, bob, created, sid } = await roomOfTwo(ctx.server, 'caps');
    for (let i = 0; i < 8; i++) await ctx.connect(sid, created.token);
    const ninth = await Client.attempt(sessionWsUrl(ctx.server, sid, created.token));
    assert.equal(ninth.opened, true);
    assert.equal(ninth.close?.code, 1008, JSON.stringify(ninth.close));
    // Another user is not held to Alice's cap.
    await ctx.connect(sid, (await mintToken(ctx.server, bob, sid)).token);
    for (let i = 0; i < 8; i++) {
      const sse = await openSse(`${ctx.server.url}/v1/sessions/${sid}/events`, { key: alice.key });
      streams.add(sse);
      assert.equal(sse.status, 200);
    }
    const refused = await openSse(`${ctx.server.url}/v1/sessions/${sid}/events`, { key: alice.key });
    streams.add(refused);
    assert.equal(refused.status, 429);
  });
});
