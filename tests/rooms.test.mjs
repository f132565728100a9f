// Multiplayer rooms: fan-out order, authorship, presence, the prompt queue, idempotency,
// cancel and history, all over participant WebSockets.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Client,
  addMember,
  allEvents,
  createSession,
  createUser,
  mintToken,
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
const { connect } = useServer({
  setup: async (s, h) => {
    server = s;
    http = h;
  },
});

function promptFrame(content, client_request_id = rid('p')) {
  return { type: 'prompt', content, client_request_id };
}

test('three participants receive every event in the same seq order, with authors', { timeout: 60_000 }, async () => {
  const { alice, bob, created, sid } = await roomOfTwo(server, 'fan-out');

  const stored = await allEvents(server, alice, sid);
  assert.deepEqual(stored.map((e) => [e.seq, e.type, e.participant?.user_id]), [
    [1, 'participant_joined', alice.id],
    [2, 'participant_joined', bob.id],
  ]);

  const a1 = await connect(sid, created.token);
  const a2 = await connect(sid, (await mintToken(server, alice, sid)).token);
  const b1 = await connect(sid, (await mintToken(server, bob, sid)).token);
  for (const { welcome } of [a1, a2, b1]) assert.equal(welcome.last_seq, 2);
  assert.equal(a1.welcome.participant.user_id, alice.id);
  assert.equal(a2.welcome.participant.user_id, alice.id);
  assert.equal(b1.welcome.participant.user_id, bob.id);
  assert.equal(a1.welcome.participant.id, a2.welcome.participant.id, 'one participant per user and session');
  assert.notEqual(a1.welcome.participant.id, b1.welcome.participant.id);

  // Prompts from every socket at once, plus one over HTTP.
  const sent = [
    [a1, 'alpha one'], [b1, 'bravo one'], [a2, 'alpha two'], [b1, 'bravo two'],
    [a1, 'alpha three'], [a2, 'alpha four'], [b1, 'bravo three'],
  ].map(([who, content]) => ({ who, frame: promptFrame(content) }));
  for (const { who, frame } of sent) who.client.send(frame);
  const httpCrid = rid('http');
  const httpRes = await http.post(`/v1/sessions/${sid}/prompts`, {
    key: bob.key,
    body: { content: 'bravo over http', client_request_id: httpCrid },
  });
  assert.equal(httpRes.status, 202, httpRes.text);

  const acks = await Promise.all(
    sent.map(({ who, frame }) =>
      who.client.waitFor((f) => f.type === 'prompt_ack' && f.client_request_id === frame.client_request_id),
    ),
  );
  // Acks go to the sending socket only.
  for (const { who, frame } of sent) {
    for (const other of [a1, a2, b1].filter((c) => c !== who)) {
      assert.ok(
        !other.client.frames.some((f) => f.type === 'prompt_ack' && f.client_request_id === frame.client_request_id),
        'prompt_ack reached a socket that did not send the prompt',
      );
    }
  }

  const last = 2 + sent.length + 1;
  const views = await Promise.all([a1, a2, b1].map(({ client }) => client.waitForSeq(last)));
  await sleep(300); // anything extra (a duplicate) would arrive now
  for (const [i, { client }] of [a1, a2, b1].entries()) {
    assert.deepEqual(seqs(client.events()), range(3, last), `client ${i} saw a gap, a duplicate or a reordering`);
  }
  assert.deepEqual(views[1], views[0]);
  assert.deepEqual(views[2], views[0]);

  // What the sockets saw is what was stored.
  const storedAfter = await allEvents(server, alice, sid);
  assert.deepEqual(storedAfter.slice(2), a1.client.events());

  // Every prompt became exactly one message event, tagged with its author.
  const messages = a1.client.events().filter((e) => e.type === 'message');
  assert.equal(messages.length, sent.length + 1);
  const participantOf = { [alice.id]: a1.welcome.participant, [bob.id]: b1.welcome.participant };
  for (const [i, { who, frame }] of sent.entries()) {
    const matching = messages.filter((m) => m.client_request_id === frame.client_request_id);
    assert.equal(matching.length, 1, `message for ${frame.content}`);
    const [m] = matching;
    const user = who === b1 ? bob : alice;
    assert.equal(m.content, frame.content);
    assert.equal(m.author.name, user.name);
    assert.ok([user.id, participantOf[user.id].id].includes(m.author.id), `author id ${m.author.id}`);
    assert.equal(m.source, 'web');
    assert.equal(m.message_id, acks[i].message_id);
    // No sandbox runs, so the position is the prompt's place in the queue of waiting prompts.
    assert.equal(acks[i].position, messages.indexOf(m) + 1, `position of ${frame.content}`);
  }
  const viaHttp = messages.find((m) => m.client_request_id === httpCrid);
  assert.equal(viaHttp.author.name, bob.name);
  assert.equal(viaHttp.source, 'api');
  assert.equal(viaHttp.message_id, httpRes.json.message_id);
  assert.equal(httpRes.json.position, messages.indexOf(viaHttp) + 1);
});

/** The change of `kind` for `userId` in a `presence_delta` frame, if it carries one. */
const presenceChange = (frame, kind, userId) =>
  frame.type === 'presence_delta' && frame.changes.find((c) => c.change === kind && c.participant.user_id === userId);

test('welcome, presence and typing; sockets do not append events', { timeout: 60_000 }, async () => {
  const { alice, bob, created, sid } = await roomOfTwo(server, 'presence');
  const before = await allEvents(server, alice, sid);

  const a = await connect(sid, created.token);
  assert.equal(a.client.frames[0].type, 'welcome', 'the welcome is the first frame');
  assert.equal(a.welcome.session.id, sid);
  assert.equal(a.welcome.session.repo, 'acme/demo');
  assert.equal(a.welcome.participant.name, alice.name);
  assert.equal(a.welcome.last_seq, before.length);
  assert.ok(Array.isArray(a.welcome.online));

  const mark = a.client.mark();
  const b = await connect(sid, (await mintToken(server, bob, sid)).token);
  assert.ok(b.welcome.online.some((p) => p.user_id === alice.id), 'the welcome lists who is online');
  assert.deepEqual(b.welcome.typing, []);
  // The joiner gets the whole picture once, in its welcome; the others hear of the join as a delta.
  assert.deepEqual(b.welcome.online.map((p) => p.user_id).sort(), [alice.id, bob.id].sort());
  const bobJoined = await a.client.waitFor(
    (f) => presenceChange(f, 'joined', bob.id),
    10_000,
    mark,
  );
  assert.equal(presenceChange(bobJoined, 'joined', bob.id).participant.name, bob.name);

  const detail = await http.get(`/v1/sessions/${sid}`, { key: alice.key });
  assert.equal(detail.status, 200);
  const online = Object.fromEntries(detail.json.participants.map((p) => [p.user_id, p.online]));
  assert.deepEqual(online, { [alice.id]: true, [bob.id]: true });

  const beforeTyping = a.client.mark();
  b.client.send({ type: 'typing' });
  const typing = await a.client.waitFor(
    (f) => presenceChange(f, 'typing', bob.id),
    10_000,
    beforeTyping,
  );
  assert.equal(presenceChange(typing, 'typing', bob.id).expires_in_ms, 6000);
  await b.client.waitFor((f) => presenceChange(f, 'typing', bob.id));

  // A late joiner sees who is typing in its welcome.
  const c = await connect(sid, (await mintToken(server, alice, sid)).token);
  assert.ok(c.welcome.typing.some((p) => p.user_id === bob.id), 'the welcome lists who is typing');
  await c.client.closeAndWait();

  b.client.send({ type: 'ping' });
  await b.client.waitFor((f) => f.type === 'pong');

  // A user with two sockets stays online while one of them is open.
  const beforeSecond = a.client.mark();
  const a2 = await connect(sid, (await mintToken(server, alice, sid)).token);
  assert.equal(a2.welcome.participant.id, a.welcome.participant.id);
  assert.equal(a2.welcome.online.filter((p) => p.user_id === alice.id).length, 1, 'a participant is listed once');
  await a2.client.closeAndWait();
  await sleep(500);
  assert.ok(
    !a.client.frames.slice(beforeSecond).some((f) => f.type === 'presence_delta' && f.changes.some((c) => c.participant.user_id === alice.id)),
    'Alice opening and closing a second socket changes nothing for the others',
  );

  const beforeLeave = a.client.mark();
  await b.client.closeAndWait();
  await a.client.waitFor(
    (f) => presenceChange(f, 'left', bob.id),
    10_000,
    beforeLeave,
  );

  assert.deepEqual(await allEvents(server, alice, sid), before, 'connect, typing, ping and disconnect stored nothing');
  assert.deepEqual(a.client.events(), []);
});

test('queue positions, cancel over WebSocket and its errors', { timeout: 60_000 }, async () => {
  const { alice, bob, created, sid } = await roomOfTwo(server, 'queue');
  const a = await connect(sid, created.token);
  const b = await connect(sid, (await mintToken(server, bob, sid)).token);

  const p1 = promptFrame('first');
  const p2 = promptFrame('second');
  a.client.send(p1);
  const ack1 = await a.client.waitFor((f) => f.type === 'prompt_ack' && f.client_request_id === p1.client_request_id);
  b.client.send(p2);
  const ack2 = await b.client.waitFor((f) => f.type === 'prompt_ack' && f.client_request_id === p2.client_request_id);
  assert.equal(ack1.position, 1);
  assert.equal(ack2.position, 2);
  assert.notEqual(ack1.message_id, ack2.message_id);

  let detail = await http.get(`/v1/sessions/${sid}`, { key: bob.key });
  assert.deepEqual(
    detail.json.queue.map((q) => [q.message_id, q.status, q.position, q.content, q.author?.name]),
    [
      [ack1.message_id, 'queued', 1, 'first', alice.name],
      [ack2.message_id, 'queued', 2, 'second', bob.name],
    ],
  );

  // Bob cancels Alice's queued prompt: everyone sees it finish as cancelled.
  b.client.send({ type: 'cancel', message_id: ack1.message_id });
  const isCancel = (f) => f.type === 'prompt_finished' && f.message_id === ack1.message_id;
  const [fa, fb] = await Promise.all([a.client.waitFor(isCancel), b.client.waitFor(isCancel)]);
  assert.equal(fa.status, 'cancelled');
  assert.deepEqual(fb, fa);
  assert.equal(fa.seq, 5); // joined, joined, message, message, prompt_finished

  detail = await http.get(`/v1/sessions/${sid}`, { key: alice.key });
  assert.deepEqual(
    detail.json.queue.map((q) => [q.message_id, q.position]),
    [[ack2.message_id, 1]],
  );

  const p3 = promptFrame('third');
  a.client.send(p3);
  const ack3 = await a.client.waitFor((f) => f.type === 'prompt_ack' && f.client_request_id === p3.client_request_id);
  assert.equal(ack3.position, 2);

  const beforeErrors = await allEvents(server, alice, sid);
  let mark = b.client.mark();
  b.client.send({ type: 'cancel', message_id: ack1.message_id });
  const conflict = await b.client.waitFor((f) => f.type === 'error', 10_000, mark);
  assert.equal(conflict.code, 'conflict');
  mark = b.client.mark();
  b.client.send({ type: 'cancel', message_id: 'msg_does_not_exist' });
  const missing = await b.client.waitFor((f) => f.type === 'error', 10_000, mark);
  assert.equal(missing.code, 'not_found');
  assert.ok(b.client.isOpen, 'the socket stays open after error frames');
  assert.deepEqual(await allEvents(server, alice, sid), beforeErrors);

  const messages = await http.get(`/v1/sessions/${sid}/messages`, { key: alice.key });
  assert.equal(messages.status, 200);
  const statusOf = Object.fromEntries(messages.json.messages.map((m) => [m.id, m.status]));
  assert.equal(statusOf[ack1.message_id], 'cancelled');
  assert.equal(statusOf[ack2.message_id], 'queued');
  assert.equal(statusOf[ack3.message_id], 'queued');
});

test('client_request_id is idempotent per user, across sockets', { timeout: 60_000 }, async () => {
  const { alice, bob, created, sid } = await roomOfTwo(server, 'idempotency');
  const a1 = await connect(sid, created.token);
  const a2 = await connect(sid, (await mintToken(server, alice, sid)).token);
  const b = await connect(sid, (await mintToken(server, bob, sid)).token);

  const crid = rid('same');
  const isAck = (f) => f.type === 'prompt_ack' && f.client_request_id === crid;
  a1.client.send(promptFrame('only once', crid));
  const first = await a1.client.waitFor(isAck);
  a1.client.send(promptFrame('only once', crid));
  const again = await a1.client.waitForCount(isAck, 2);
  a2.client.send(promptFrame('only once', crid));
  const fromOtherSocket = await a2.client.waitFor(isAck);
  assert.equal(again[1].message_id, first.message_id);
  assert.equal(fromOtherSocket.message_id, first.message_id);

  // And over HTTP: idempotency is per user, not per transport.
  const overHttp = await http.post(`/v1/sessions/${sid}/prompts`, { key: alice.key, body: { content: 'only once', client_request_id: crid } });
  assert.equal(overHttp.status, 202, overHttp.text);
  assert.equal(overHttp.json.message_id, first.message_id);
  assert.equal(overHttp.json.position, 1);

  // The same id from another user is another prompt.
  b.client.send(promptFrame('mine too', crid));
  const bobs = await b.client.waitFor(isAck);
  assert.notEqual(bobs.message_id, first.message_id);
  assert.equal(bobs.position, 2);

  await a1.client.waitForSeq(4);
  await sleep(300);
  const events = await allEvents(server, alice, sid);
  assert.deepEqual(
    events.map((e) => [e.seq, e.type, e.message_id ?? null]),
    [
      [1, 'participant_joined', null],
      [2, 'participant_joined', null],
      [3, 'message', first.message_id],
      [4, 'message', bobs.message_id],
    ],
  );
  assert.deepEqual(seqs(a2.client.events()), [3, 4]);
});

test('prompt frames carry attachments and selection ids to every participant', { timeout: 30_000 }, async () => {
  const { alice, bob, created, sid } = await roomOfTwo(server, 'attachments');
  const sel = await http.post(`/v1/sessions/${sid}/selections`, {
    key: bob.key,
    body: {
      url: 'https://app.example.com/',
      title: 'Home',
      viewport: { width: 800, height: 600 },
      elements: [{ tag: 'button', text: 'Buy', rect: { x: 1, y: 2, width: 3, height: 4 } }],
    },
  });
  assert.equal(sel.status, 201, sel.text);
  const a = await connect(sid, created.token);
  const b = await connect(sid, (await mintToken(server, bob, sid)).token);
  const frame = {
    ...promptFrame('use this'),
    attachments: [{ kind: 'note', text: 'ünïcode ✓ <b>bold</b>' }],
    selection_ids: [sel.json.artifact_id],
  };
  a.client.send(frame);
  const isMsg = (f) => f.type === 'message' && f.client_request_id === frame.client_request_id;
  const [ma, mb] = await Promise.all([a.client.waitFor(isMsg), b.client.waitFor(isMsg)]);
  assert.deepEqual(mb, ma);
  assert.equal(ma.content, 'use this');
  assert.deepEqual(ma.attachments, frame.attachments);
  assert.deepEqual(ma.selection_ids, [sel.json.artifact_id]);
  assert.equal(ma.author.name, alice.name);
  assert.equal(ma.seq, 4);
});

test('history frames page backwards through stored events', { timeout: 60_000 }, async () => {
  const { alice, created, sid } = await roomOfTwo(server, 'history');
  for (let i = 0; i < 5; i++) {
    const res = await http.post(`/v1/sessions/${sid}/prompts`, { key: alice.key, body: { content: `h${i}` } });
    assert.equal(res.status, 202, res.text);
  }
  const stored = await allEvents(server, alice, sid);
  assert.deepEqual(seqs(stored), range(1, 7));

  const a = await connect(sid, created.token);
  const cases = [
    // [before_seq, limit, expected seqs, has_more]
    [8, 3, [5, 6, 7], true],
    [5, 3, [2, 3, 4], true],
    [4, 10, [1, 2, 3], false],
    [2, 1, [1], false],
    [1, 5, [], false],
  ];
  for (const [before_seq, limit, expected, hasMore] of cases) {
    const mark = a.client.mark();
    a.client.send({ type: 'history', before_seq, limit });
    const page = await a.client.waitFor((f) => f.type === 'history', 10_000, mark);
    assert.deepEqual(seqs(page.events), expected, `history before ${before_seq} limit ${limit}`);
    assert.equal(page.has_more, hasMore, `has_more before ${before_seq} limit ${limit}`);
    assert.deepEqual(page.events, stored.filter((e) => expected.includes(e.seq)));
  }
  assert.deepEqual(a.client.events(), [], 'history pages are not live events');
});

test('concurrent prompts from several users get distinct seqs and queue positions', { timeout: 60_000 }, async () => {
  const owner = await createUser(server, 'Owner', { repos: ['acme/*'] });
  const others = [await createUser(server, 'C1', { repos: ['acme/*'] }), await createUser(server, 'C2', { repos: ['acme/*'] })];
  const created = await createSession(server, owner, { title: 'concurrency' });
  const sid = created.session.id;
  for (const o of others) await addMember(server, owner, sid, o);
  const watcher = await connect(sid, created.token);
  const users = [owner, ...others];
  const results = await Promise.all(
    users.flatMap((u) =>
      range(1, 6).map(async (i) => {
        const content = `${u.name} #${i}`;
        const res = await http.post(`/v1/sessions/${sid}/prompts`, { key: u.key, body: { content } });
        assert.equal(res.status, 202, res.text);
        return { content, ...res.json };
      }),
    ),
  );
  const last = 3 + results.length;
  await watcher.client.waitForSeq(last);
  await sleep(300);
  assert.deepEqual(seqs(watcher.client.events()), range(4, last));
  const stored = await allEvents(server, owner, sid);
  assert.deepEqual(seqs(stored), range(1, last));
  const messages = stored.filter((e) => e.type === 'message');
  assert.equal(new Set(messages.map((m) => m.message_id)).size, results.length);
  // Positions are a permutation of 1..n that follows the order the prompts were stored in.
  for (const r of results) {
    const rank = messages.findIndex((m) => m.message_id === r.message_id) + 1;
    assert.equal(r.position, rank, `${r.content}: position ${r.position}, stored as #${rank}`);
    assert.equal(messages[rank - 1].content, r.content);
  }
});
