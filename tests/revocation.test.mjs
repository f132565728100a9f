// Revocation reaches live connections, and access needs scope: a removed member's SSE stream
// ends, a disabled user's sockets and streams close in every session, a socket closes when
// its token runs out however long keep-alives kept it open (and an SSE stream ends then), and membership needs the
// session's repository in the member's scopes (when added, at the handshake, on HTTP, and when
// the scopes narrow later). Also: a repeated client_request_id with other content is a conflict.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Client,
  addMember,
  allEvents,
  createSession,
  createUser,
  errorCode,
  mintToken,
  openSse,
  rid,
  sessionWsUrl,
  signToken,
  sleep,
  useServer,
} from './support/server.mjs';

const ctx = useServer();
const http = () => ctx.http;

/** An SSE stream of the session for `user`'s key, from the start. */
async function stream(sid, user) {
  const s = await openSse(`${ctx.server.url}/v1/sessions/${sid}/events?since=0`, { key: user.key });
  assert.equal(s.status, 200, s.text);
  return s;
}

/** Whether the stream ends within `ms`. */
async function ends(s, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!s.ended && Date.now() < deadline) await sleep(50);
  return s.ended;
}

async function prompt(sid, user, content) {
  const res = await http().post(`/v1/sessions/${sid}/prompts`, { key: user.key, body: { content } });
  assert.equal(res.status, 202, res.text);
  return res.json.message_id;
}

test('a member removed from a session loses their SSE stream as well as their sockets', { timeout: 60_000 }, async () => {
  const alice = await createUser(ctx.server, 'Alice', { repos: ['acme/*'] });
  const bob = await createUser(ctx.server, 'Bob', { repos: ['acme/*'] });
  const { session } = await createSession(ctx.server, alice, { title: 'removal' });
  const sid = session.id;
  await addMember(ctx.server, alice, sid, bob);
  const bobStream = await stream(sid, bob);
  const aliceStream = await stream(sid, alice);
  const bobSocket = ctx.clients.add(await Client.connect(sessionWsUrl(ctx.server, sid, (await mintToken(ctx.server, bob, sid)).token)));
  await bobSocket.welcome();
  await bobStream.waitForSeq(2);

  const removed = await http().del(`/v1/sessions/${sid}/members/${bob.id}`, { key: alice.key });
  assert.equal(removed.status, 200, removed.text);
  assert.equal((await bobSocket.waitClose()).code, 4003);
  assert.ok(await ends(bobStream), 'the removed member\u2019s stream ended');

  // What happens afterwards reaches the members only.
  const secret = await prompt(sid, alice, 'after Bob left');
  const seen = await aliceStream.waitFor((e) => e.data?.message_id === secret);
  await sleep(300);
  assert.ok(!bobStream.events.some((e) => e.data?.seq >= seen.data.seq), 'nothing after the removal reached Bob');
  assert.ok(!bobStream.text.includes('after Bob left'));
  aliceStream.close();
});

test('disabling a user closes their sockets (4001) and streams in every session, and they cannot prompt', { timeout: 60_000 }, async () => {
  const owner = await createUser(ctx.server, 'Olive', { repos: ['acme/*'] });
  const carol = await createUser(ctx.server, 'Carol', { repos: ['acme/*'] });
  const mine = await createSession(ctx.server, carol, { title: 'Carol\u2019s own' });
  const shared = await createSession(ctx.server, owner, { title: 'shared with Carol' });
  await addMember(ctx.server, owner, shared.session.id, carol);
  const sockets = [];
  let sharedToken;
  for (const sid of [mine.session.id, shared.session.id]) {
    sharedToken = (await mintToken(ctx.server, carol, sid)).token;
    const client = ctx.clients.add(await Client.connect(sessionWsUrl(ctx.server, sid, sharedToken)));
    await client.welcome();
    sockets.push(client);
  }
  const carolStream = await stream(shared.session.id, carol);
  const ownerSocket = ctx.clients.add(await Client.connect(sessionWsUrl(ctx.server, shared.session.id, shared.token)));
  await ownerSocket.welcome();

  const off = await http().patch(`/v1/users/${carol.id}`, { key: ctx.server.adminKey, body: { disabled: true } });
  assert.equal(off.status, 200, off.text);
  for (const socket of sockets) {
    const closed = await socket.waitClose();
    assert.deepEqual(closed, { code: 4001, reason: 'this user is disabled' });
  }
  assert.ok(await ends(carolStream), 'the disabled user\u2019s stream ended');
  assert.ok(ownerSocket.isOpen, 'the owner\u2019s socket stays open');

  // The page's next step, a fresh ticket, is refused; so is a socket with the old token.
  const ticket = await http().post(`/v1/sessions/${shared.session.id}/tickets`, { key: carol.key });
  assert.equal(ticket.status, 401, ticket.text);
  const again = await Client.attempt(sessionWsUrl(ctx.server, shared.session.id, sharedToken));
  assert.equal(again.close?.code, 4001, JSON.stringify(again));
  assert.ok(!again.frames.some((f) => f.type === 'welcome'));
  const before = await allEvents(ctx.server, owner, shared.session.id);
  assert.ok(!before.some((e) => e.type === 'message' && e.author.id === carol.id));
});

test('a socket closes with 4001 when its token runs out, however long keep-alives keep it open', { timeout: 60_000 }, async () => {
  const dana = await createUser(ctx.server, 'Dana', { repos: ['acme/*'] });
  const { session } = await createSession(ctx.server, dana, { title: 'expiry' });
  const sid = session.id;
  // A genuine token with a few seconds left, on the deprecated ?token= URL and through a ticket.
  const exp = Date.now() + 4_000;
  const token = signToken(ctx.server.tokenSecret, { sid, uid: dana.id, exp });
  const byToken = ctx.clients.add(await Client.connect(sessionWsUrl(ctx.server, sid, token)));
  await byToken.welcome();
  const traded = await http().post(`/v1/sessions/${sid}/tickets`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(traded.status, 201, traded.text);
  const byTicket = ctx.clients.add(await Client.connect(traded.json.ws_url));
  await byTicket.welcome();
  // A socket with a long-lived token stays.
  const fresh = ctx.clients.add(await Client.connect(sessionWsUrl(ctx.server, sid, (await mintToken(ctx.server, dana, sid)).token)));
  await fresh.welcome();

  const pinger = setInterval(() => {
    for (const c of [byToken, byTicket, fresh]) if (c.isOpen) c.send({ type: 'ping' });
  }, 500);
  try {
    for (const socket of [byToken, byTicket]) {
      const closed = await socket.waitClose(15_000);
      assert.equal(closed?.code, 4001, `closed: ${JSON.stringify(closed)}`);
      assert.match(closed.reason, /expired/);
    }
    assert.ok(Date.now() >= exp - 50, 'not before the token ran out');
    await sleep(500);
    assert.ok(fresh.isOpen, 'a socket whose token is still valid stays open');
    fresh.send({ type: 'prompt', content: 'still here', client_request_id: rid() });
    await fresh.waitFor((f) => f.type === 'prompt_ack');
  } finally {
    clearInterval(pinger);
  }
});

test('an SSE stream ends when its token runs out, as a socket closes with 4001; one opened with a key stays', { timeout: 60_000 }, async () => {
  const erin = await createUser(ctx.server, 'Erin', { repos: ['acme/*'] });
  const { session } = await createSession(ctx.server, erin, { title: 'stream expiry' });
  const sid = session.id;
  const exp = Date.now() + 4_000;
  const token = signToken(ctx.server.tokenSecret, { sid, uid: erin.id, exp });
  // Through a ticket traded for the short token (its `until` is the token's expiry), and on
  // the deprecated ?token= URL.
  const traded = await http().post(`/v1/sessions/${sid}/tickets`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(traded.status, 201, traded.text);
  const byTicket = await openSse(traded.json.events_url.startsWith('http') ? traded.json.events_url : `${ctx.server.url}${traded.json.events_url}`);
  assert.equal(byTicket.status, 200, byTicket.text);
  const byToken = await openSse(`${ctx.server.url}/v1/sessions/${sid}/events?since=0&token=${encodeURIComponent(token)}`);
  assert.equal(byToken.status, 200, byToken.text);
  const byKey = await stream(sid, erin);
  await byTicket.waitForSeq(1);
  await byToken.waitForSeq(1);
  await byKey.waitForSeq(1);
  try {
    assert.ok(await ends(byTicket, 15_000), 'the ticket’s stream ended');
    assert.ok(await ends(byToken, 5_000), 'the token’s stream ended');
    assert.ok(Date.now() >= exp - 50, 'not before the token ran out');
    // A stream opened with a key has no token to run out: it still gets what happens.
    const id = await prompt(sid, erin, 'after the token ran out');
    await byKey.waitFor((e) => e.data?.message_id === id);
    assert.ok(!byKey.ended);
  } finally {
    byKey.close();
  }
});

test('membership needs the repository in the member\u2019s scopes: when added, at the handshake, on HTTP, and after scopes narrow', { timeout: 60_000 }, async () => {
  const owner = await createUser(ctx.server, 'Omar', { repos: ['acme/*'] });
  const webOnly = await createUser(ctx.server, 'Wendy', { repos: ['acme/web'] });
  const demo = await createSession(ctx.server, owner, { title: 'demo', repo: 'acme/demo' });
  const web = await createSession(ctx.server, owner, { title: 'web', repo: 'acme/web' });

  // Adding a user whose scopes exclude the repository: 403 with a sentence, nothing stored.
  const before = await allEvents(ctx.server, owner, demo.session.id);
  const refused = await http().post(`/v1/sessions/${demo.session.id}/members`, { key: owner.key, body: { user_id: webOnly.id, role: 'member' } });
  assert.equal(refused.status, 403, refused.text);
  assert.equal(errorCode(refused), 'forbidden');
  assert.equal(refused.json.error.message, 'Wendy cannot join this session: their scopes do not include acme/demo');
  assert.deepEqual(await allEvents(ctx.server, owner, demo.session.id), before);
  assert.equal((await http().get(`/v1/sessions/${demo.session.id}`, { key: webOnly.key })).status, 404);

  // Dave may use both repositories, joins both sessions, and has a socket and a stream open.
  const dave = await createUser(ctx.server, 'Dave', { repos: ['acme/*'] });
  await addMember(ctx.server, owner, demo.session.id, dave);
  await addMember(ctx.server, owner, web.session.id, dave);
  const demoSocket = ctx.clients.add(await Client.connect(sessionWsUrl(ctx.server, demo.session.id, (await mintToken(ctx.server, dave, demo.session.id)).token)));
  await demoSocket.welcome();
  const webSocket = ctx.clients.add(await Client.connect(sessionWsUrl(ctx.server, web.session.id, (await mintToken(ctx.server, dave, web.session.id)).token)));
  await webSocket.welcome();
  const demoStream = await stream(demo.session.id, dave);
  const oldToken = (await mintToken(ctx.server, dave, demo.session.id)).token;

  // Narrowing his scopes to acme/web closes what he has open on acme/demo, and only that.
  const narrowed = await http().patch(`/v1/users/${dave.id}`, { key: ctx.server.adminKey, body: { scopes: { repos: ['acme/web'] } } });
  assert.equal(narrowed.status, 200, narrowed.text);
  assert.deepEqual(await demoSocket.waitClose(), { code: 4003, reason: 'your scopes no longer include acme/demo' });
  assert.ok(await ends(demoStream), 'the stream on acme/demo ended');
  await sleep(300);
  assert.ok(webSocket.isOpen, 'the session on acme/web is still his');

  // The check is repeated at the handshake and on every HTTP call.
  const handshake = await Client.attempt(sessionWsUrl(ctx.server, demo.session.id, oldToken));
  assert.equal(handshake.opened, true);
  assert.equal(handshake.close?.code, 4003);
  assert.ok(!handshake.frames.some((f) => f.type === 'welcome'));
  const sid = demo.session.id;
  for (const [method, path, body] of [
    ['GET', `/v1/sessions/${sid}`],
    ['GET', `/v1/sessions/${sid}/events`],
    ['POST', `/v1/sessions/${sid}/prompts`, { content: 'let me still' }],
    ['POST', `/v1/sessions/${sid}/tokens`],
    ['POST', `/v1/sessions/${sid}/tickets`],
  ]) {
    const res = await http().request(method, path, { key: dave.key, body });
    assert.equal(res.status, 403, `${method} ${path}: ${res.text}`);
    assert.match(res.json.error.message, /your scopes do not include acme\/demo/);
  }
  assert.ok(!(await allEvents(ctx.server, owner, sid)).some((e) => e.type === 'message' && e.content === 'let me still'));
  webSocket.send({ type: 'prompt', content: 'on web', client_request_id: rid() });
  await webSocket.waitFor((f) => f.type === 'prompt_ack');

  // Granted again, he is back.
  await http().patch(`/v1/users/${dave.id}`, { key: ctx.server.adminKey, body: { scopes: { repos: ['acme/*'] } } });
  assert.equal((await http().get(`/v1/sessions/${sid}`, { key: dave.key })).status, 200);
});

test('the same client_request_id with another prompt is a conflict, on the socket and over HTTP', { timeout: 60_000 }, async () => {
  const erin = await createUser(ctx.server, 'Erin', { repos: ['acme/*'] });
  const created = await createSession(ctx.server, erin, { title: 'idempotency' });
  const sid = created.session.id;
  const ws = ctx.clients.add(await Client.connect(sessionWsUrl(ctx.server, sid, created.token)));
  await ws.welcome();

  ws.send({ type: 'prompt', content: 'first', client_request_id: 'same-1' });
  const ack = await ws.waitFor((f) => f.type === 'prompt_ack' && f.client_request_id === 'same-1');
  // The same prompt again is the same message.
  let mark = ws.mark();
  ws.send({ type: 'prompt', content: 'first', client_request_id: 'same-1' });
  const repeat = await ws.waitFor((f) => f.type === 'prompt_ack', 10_000, mark);
  assert.equal(repeat.message_id, ack.message_id);
  // Another content, or other attachments, under the same id: conflict, nothing stored.
  for (const changed of [{ content: 'second' }, { content: 'first', attachments: [{ kind: 'note' }] }]) {
    mark = ws.mark();
    ws.send({ type: 'prompt', client_request_id: 'same-1', ...changed });
    const error = await ws.waitFor((f) => f.type === 'error' || f.type === 'prompt_ack', 10_000, mark);
    assert.equal(error.type, 'error', JSON.stringify(error));
    assert.equal(error.code, 'conflict');
    assert.equal(error.client_request_id, 'same-1');
    assert.match(error.message, /already used for another prompt/);
  }
  assert.ok(ws.isOpen);

  const body = { content: 'over http', client_request_id: 'same-2' };
  const first = await http().post(`/v1/sessions/${sid}/prompts`, { key: erin.key, body });
  assert.equal(first.status, 202, first.text);
  const again = await http().post(`/v1/sessions/${sid}/prompts`, { key: erin.key, body });
  assert.equal(again.status, 202, again.text);
  assert.equal(again.json.message_id, first.json.message_id);
  const other = await http().post(`/v1/sessions/${sid}/prompts`, { key: erin.key, body: { ...body, content: 'something else' } });
  assert.equal(other.status, 409, other.text);
  assert.equal(errorCode(other), 'conflict');
  // The socket's id over HTTP with another content: the same rule.
  const crossed = await http().post(`/v1/sessions/${sid}/prompts`, { key: erin.key, body: { content: 'not first', client_request_id: 'same-1' } });
  assert.equal(crossed.status, 409, crossed.text);

  // Idempotency-Key stands in for a body without client_request_id.
  const keyed = (content, key) => http().post(`/v1/sessions/${sid}/prompts`, { key: erin.key, headers: { 'idempotency-key': key }, body: { content } });
  const k1 = await keyed('keyed', 'key-1');
  assert.equal(k1.status, 202, k1.text);
  const k2 = await keyed('keyed', 'key-1');
  assert.equal(k2.json.message_id, k1.json.message_id);
  assert.equal((await keyed('keyed differently', 'key-1')).status, 409);
  assert.equal((await keyed('x', 'k'.repeat(129))).status, 422, 'a key is 1 to 128 bytes, like client_request_id');

  const messages = (await allEvents(ctx.server, erin, sid)).filter((e) => e.type === 'message');
  assert.deepEqual(messages.map((m) => [m.content, m.client_request_id]), [['first', 'same-1'], ['over http', 'same-2'], ['keyed', 'key-1']]);
});

test('POST /v1/sessions with an Idempotency-Key answers a repeat as the first time', { timeout: 60_000 }, async () => {
  const fay = await createUser(ctx.server, 'Fay', { repos: ['acme/*'] });
  const create = (body, key) => http().post('/v1/sessions', { key: fay.key, headers: { 'idempotency-key': key }, body: { repo: 'acme/demo', ...body } });
  const first = await create({ title: 'once', prompt: 'do it once' }, 'create-1');
  assert.equal(first.status, 201, first.text);
  const again = await create({ title: 'once', prompt: 'do it once' }, 'create-1');
  assert.equal(again.status, 201, again.text);
  assert.deepEqual(again.json.session, first.json.session);
  assert.equal(again.json.message_id, first.json.message_id);
  assert.deepEqual(again.json.participant, first.json.participant);
  const other = await create({ title: 'something else' }, 'create-1');
  assert.equal(other.status, 409, other.text);
  const list = await http().get('/v1/sessions', { key: fay.key });
  assert.deepEqual(list.json.sessions.map((s) => s.id), [first.json.session.id]);
  const events = await allEvents(ctx.server, fay, first.json.session.id);
  assert.equal(events.filter((e) => e.type === 'message').length, 1);
  // Another user's same key is their own request.
  const gil = await createUser(ctx.server, 'Gil', { repos: ['acme/*'] });
  const theirs = await http().post('/v1/sessions', { key: gil.key, headers: { 'idempotency-key': 'create-1' }, body: { repo: 'acme/demo', title: 'once' } });
  assert.equal(theirs.status, 201, theirs.text);
  assert.notEqual(theirs.json.session.id, first.json.session.id);
});
