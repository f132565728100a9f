// Resuming: WebSocket replay with `since`, SSE with Last-Event-ID, and both after the
// Durable Object restarted from its persisted storage.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Client,
  addMember,
  allEvents,
  createSession,
  createUser,
  mintToken,
  openSse,
  range,
  rid,
  seqs,
  sessionWsUrl,
  sleep,
  roomOfTwo,
  useServer,
} from './support/server.mjs';

let server;
let http;
const streams = new Set();
const { clients, connect } = useServer({
  setup: async (s, h) => {
    server = s;
    http = h;
  },
  cleanup: () => {
    for (const s of streams) s.close();
    streams.clear();
  },
});

async function sse(sessionId, { key, token, since, lastEventId } = {}) {
  const params = new URLSearchParams();
  if (since !== undefined) params.set('since', String(since));
  if (token) params.set('token', token);
  const q = params.toString();
  const stream = await openSse(`${server.url}/v1/sessions/${sessionId}/events${q ? `?${q}` : ''}`, { key, lastEventId });
  streams.add(stream);
  return stream;
}

/** Sends a prompt over WebSocket and waits for its acknowledgement. */
async function prompt(client, content) {
  const client_request_id = rid('p');
  client.send({ type: 'prompt', content, client_request_id });
  return client.waitFor((f) => f.type === 'prompt_ack' && f.client_request_id === client_request_id);
}

/** Asserts the frames of a fresh connection: the welcome, then exactly `expected` (by seq), nothing between. */
function assertReplay(client, stored, from, to, what) {
  const frames = client.frames;
  assert.equal(frames[0].type, 'welcome', `${what}: the welcome comes first`);
  const replay = frames.slice(1, 1 + (to - from + 1));
  assert.deepEqual(seqs(replay), range(from, to), `${what}: replayed seqs follow the welcome directly`);
  assert.deepEqual(replay, stored.filter((e) => e.seq >= from && e.seq <= to), `${what}: replay equals what was stored`);
  assert.deepEqual(seqs(client.events()), range(from, to), `${what}: no other events`);
}

test('a client that reconnects with since gets exactly the events it missed', { timeout: 60_000 }, async () => {
  const { alice, bob, created, sid } = await roomOfTwo(server, 'resume');
  const a = await connect(sid, created.token);
  const bobToken = (await mintToken(server, bob, sid)).token;
  const b = await connect(sid, bobToken);

  await prompt(a.client, 'one');
  await prompt(a.client, 'two');
  await b.client.waitForSeq(4);
  const seen = Math.max(...seqs(b.client.events()));
  assert.equal(seen, 4);
  await b.client.closeAndWait();

  // Missed while away: two messages, a cancel, an HTTP prompt.
  const three = await prompt(a.client, 'three');
  await prompt(a.client, 'four');
  a.client.send({ type: 'cancel', message_id: three.message_id });
  const viaHttp = await http.post(`/v1/sessions/${sid}/prompts`, { key: alice.key, body: { content: 'five' } });
  assert.equal(viaHttp.status, 202, viaHttp.text);
  await a.client.waitForSeq(8);
  const stored = await allEvents(server, alice, sid);
  assert.deepEqual(seqs(stored), range(1, 8));

  const back = await connect(sid, bobToken, seen);
  assert.equal(back.welcome.last_seq, 8);
  await back.client.waitForSeq(8);
  await sleep(300);
  assertReplay(back.client, stored, 5, 8, 'since=4');

  // Then live, with no duplicate of the replay.
  await prompt(a.client, 'six');
  await back.client.waitForSeq(9);
  await sleep(300);
  assert.deepEqual(seqs(back.client.events()), range(5, 9));
  assert.deepEqual(seqs(a.client.events()), range(3, 9));
});

test('since=0 replays everything; since=last_seq replays nothing', { timeout: 60_000 }, async () => {
  const { alice, created, sid } = await roomOfTwo(server, 'replay bounds');
  const a = await connect(sid, created.token);
  await prompt(a.client, 'x');
  await prompt(a.client, 'y');
  await a.client.waitForSeq(4);
  const stored = await allEvents(server, alice, sid);
  assert.deepEqual(seqs(stored), range(1, 4));

  const all = await connect(sid, created.token, 0);
  await all.client.waitForSeq(4);
  await sleep(300);
  assertReplay(all.client, stored, 1, 4, 'since=0');
  assert.equal(all.welcome.last_seq, 4);

  const none = await connect(sid, created.token, 4);
  assert.equal(none.welcome.last_seq, 4);
  const noSince = await connect(sid, created.token);
  await sleep(500);
  assert.deepEqual(none.client.events(), []);
  assert.deepEqual(noSince.client.events(), [], 'without since there is no replay');
});

test('SSE resumes exactly after Last-Event-ID and keeps streaming live events', { timeout: 60_000 }, async () => {
  const { alice, bob, created, sid } = await roomOfTwo(server, 'sse');
  for (const content of ['s1', 's2', 's3']) {
    const res = await http.post(`/v1/sessions/${sid}/prompts`, { key: alice.key, body: { content } });
    assert.equal(res.status, 202, res.text);
  }
  const stored = await allEvents(server, alice, sid);
  assert.deepEqual(seqs(stored), range(1, 5));

  const stream = await sse(sid, { key: bob.key, lastEventId: 3 });
  assert.equal(stream.status, 200, stream.text);
  assert.match(stream.headers.get('content-type'), /^text\/event-stream/);
  await stream.waitForSeq(5);

  const res = await http.post(`/v1/sessions/${sid}/prompts`, { key: bob.key, body: { content: 'live' } });
  assert.equal(res.status, 202, res.text);
  await stream.waitForSeq(6);
  await sleep(300);

  const storedNow = await allEvents(server, alice, sid);
  assert.deepEqual(stream.events.map((e) => Number(e.id)), [4, 5, 6]);
  assert.deepEqual(stream.events.map((e) => e.event), storedNow.slice(3).map((e) => e.type));
  assert.deepEqual(stream.events.map((e) => e.data), storedNow.slice(3));
  assert.equal(stream.events[2].data.message_id, res.json.message_id);

  // ?since= works the same, and a participant token can stand in for the key.
  const token = (await mintToken(server, bob, sid)).token;
  const bySince = await sse(sid, { token, since: 5 });
  assert.equal(bySince.status, 200, bySince.text);
  await bySince.waitForSeq(6);
  await sleep(300);
  assert.deepEqual(bySince.events.map((e) => Number(e.id)), [6]);

  // Last-Event-ID wins over nothing at all: resuming at the newest event sends no backlog.
  const caughtUp = await sse(sid, { key: alice.key, lastEventId: 6 });
  assert.equal(caughtUp.status, 200);
  const ws = clients.add(await Client.connect(sessionWsUrl(server, sid, created.token)));
  await ws.welcome();
  const ack = await prompt(ws, 'after catch-up');
  await caughtUp.waitForSeq(7);
  await sleep(300);
  assert.deepEqual(caughtUp.events.map((e) => Number(e.id)), [7]);
  assert.equal(caughtUp.events[0].data.message_id, ack.message_id);
});

test('SSE refuses a token of another session and a missing credential', { timeout: 30_000 }, async () => {
  const one = await roomOfTwo(server, 'sse-a');
  const two = await roomOfTwo(server, 'sse-b');
  const cases = [
    ['token of another session', { token: two.created.token }, 401],
    ['garbage token', { token: 'v1.nope.nope' }, 401],
    ['no credential', {}, 401],
    ['key of a non-member', { key: two.alice.key }, 404],
  ];
  for (const [what, creds, status] of cases) {
    const stream = await sse(one.sid, { ...creds, since: 0 });
    assert.equal(stream.status, status, `${what}: ${stream.text}`);
    assert.equal(stream.events.length, 0, what);
    assert.equal(typeof stream.json?.error?.code, 'string', `${what}: error body`);
  }
});

// Kept last: it restarts the server.
test('after a restart from persisted storage, replay is still exact and the queue survives', { timeout: 120_000 }, async () => {
  const { alice, bob, created, sid } = await roomOfTwo(server, 'restart');
  const a = await connect(sid, created.token);
  const bobToken = (await mintToken(server, bob, sid)).token;
  const b = await connect(sid, bobToken);
  const first = await prompt(a.client, 'before restart 1');
  await b.client.waitForSeq(3);
  const seen = 3;
  await b.client.closeAndWait();

  const second = await prompt(a.client, 'before restart 2');
  a.client.send({ type: 'cancel', message_id: first.message_id });
  const third = await prompt(a.client, 'before restart 3');
  await a.client.waitForSeq(6);
  const stored = await allEvents(server, alice, sid);
  assert.deepEqual(seqs(stored), range(1, 6));
  const queueBefore = (await http.get(`/v1/sessions/${sid}`, { key: alice.key })).json.queue;
  assert.deepEqual(queueBefore.map((q) => q.message_id), [second.message_id, third.message_id]);
  const messagesBefore = (await http.get(`/v1/sessions/${sid}/messages`, { key: alice.key })).json.messages;

  await server.restart();
  await a.client.waitClose(15_000);

  assert.deepEqual(await allEvents(server, alice, sid), stored, 'stored events survive the restart');
  const detail = await http.get(`/v1/sessions/${sid}`, { key: bob.key });
  assert.equal(detail.status, 200, detail.text);
  assert.equal(detail.json.last_seq, 6);
  assert.deepEqual(
    detail.json.queue.map((q) => [q.message_id, q.position, q.status]),
    queueBefore.map((q) => [q.message_id, q.position, q.status]),
  );
  const messagesAfter = (await http.get(`/v1/sessions/${sid}/messages`, { key: alice.key })).json.messages;
  assert.deepEqual(messagesAfter, messagesBefore);

  // Bob's token still works (same secret) and the replay picks up where he left.
  const back = await connect(sid, bobToken, seen);
  assert.equal(back.welcome.last_seq, 6);
  await back.client.waitForSeq(6);
  await sleep(300);
  assertReplay(back.client, stored, 4, 6, 'since=3 after restart');

  // SSE resumes after the restart too.
  const stream = await sse(sid, { key: alice.key, lastEventId: 2 });
  await stream.waitForSeq(6);

  // New events continue the sequence; idempotency survived.
  const a2 = await connect(sid, created.token, 6);
  a2.client.send({ type: 'prompt', content: 'before restart 2', client_request_id: second.client_request_id });
  const dup = await a2.client.waitFor((f) => f.type === 'prompt_ack' && f.client_request_id === second.client_request_id);
  assert.equal(dup.message_id, second.message_id);
  const fourth = await prompt(a2.client, 'after restart');
  assert.equal(fourth.position, 3);
  await back.client.waitForSeq(7);
  await stream.waitForSeq(7);
  await sleep(300);
  assert.deepEqual(seqs(back.client.events()), range(4, 7));
  assert.deepEqual(seqs(a2.client.events()), [7]);
  assert.deepEqual(stream.events.map((e) => Number(e.id)), range(3, 7));
  const final = await allEvents(server, alice, sid);
  assert.deepEqual(seqs(final), range(1, 7));
  assert.equal(final[6].type, 'message');
  assert.equal(final[6].message_id, fourth.message_id);
});
