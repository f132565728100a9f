// Bad input: every malformed, oversized, unknown or excessive request gets its error,
// nothing is stored because of it, and the socket and the session keep working.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Client,
  addMember,
  allEvents,
  createSession,
  createUser,
  errorCode,
  eventually,
  mintToken,
  range,
  rid,
  seqs,
  sessionWsUrl,
  sleep,
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

const KiB = 1024;

async function freshRoom(title) {
  const owner = await createUser(server, 'Owner', { repos: ['acme/*'] });
  const created = await createSession(server, owner, { title });
  return { owner, created, sid: created.session.id };
}

/** Sends a good prompt on `client` and checks it lands as the next event, exactly once. */
async function assertPromptStillWorks(client, owner, sid, storedBefore) {
  const crid = rid('good');
  const mark = client.mark();
  client.send({ type: 'prompt', content: 'a normal prompt', client_request_id: crid });
  const ack = await client.waitFor((f) => f.type === 'prompt_ack' && f.client_request_id === crid, 10_000, mark);
  const next = storedBefore.length + 1;
  const event = await client.waitFor((f) => f.seq === next, 10_000, mark);
  assert.equal(event.type, 'message');
  assert.equal(event.message_id, ack.message_id);
  assert.equal(event.content, 'a normal prompt');
  const stored = await allEvents(server, owner, sid);
  assert.deepEqual(stored.slice(0, storedBefore.length), storedBefore, 'the stored history is intact');
  assert.deepEqual(seqs(stored), range(1, next));
  return ack;
}

const selection = (over = {}) => ({
  url: 'https://app.example.com/dashboard',
  title: 'Dashboard',
  note: 'this card overflows on mobile',
  viewport: { width: 1280, height: 800 },
  elements: [{ tag: 'div', classes: ['card'], id: 'revenue', text: 'Revenue $12,400', rect: { x: 10, y: 20, width: 300, height: 120 } }],
  ...over,
});

test('bad WebSocket frames get error frames, change nothing, and the socket keeps working', { timeout: 60_000 }, async () => {
  const { owner, created, sid } = await freshRoom('bad frames');
  const { client } = await connect(sid, created.token);
  const storedBefore = await allEvents(server, owner, sid);

  const big = 'x'.repeat(300 * KiB);
  const cases = [
    // [what, raw frame, error code, client_request_id echoed]
    ['invalid JSON', '{nope', 'invalid_json'],
    ['truncated JSON', '{"type":"prompt","content":"x"', 'invalid_json'],
    ['a JSON array', '[1,2]', 'invalid_field'],
    ['a JSON string', '"prompt"', 'invalid_field'],
    ['unknown type', JSON.stringify({ type: 'teleport' }), 'unknown_type'],
    ['missing type', JSON.stringify({ content: 'x', client_request_id: 'c-missing-type' }), 'invalid_field', 'c-missing-type'],
    ['type is a number', JSON.stringify({ type: 5 }), 'invalid_field'],
    ['prompt without content', JSON.stringify({ type: 'prompt', client_request_id: 'c-no-content' }), 'invalid_field', 'c-no-content'],
    ['prompt content is a number', JSON.stringify({ type: 'prompt', content: 5, client_request_id: 'c-num' }), 'invalid_field', 'c-num'],
    ['prompt content is empty', JSON.stringify({ type: 'prompt', content: '   ', client_request_id: 'c-empty' }), 'invalid_field', 'c-empty'],
    ['prompt without client_request_id', JSON.stringify({ type: 'prompt', content: 'x' }), 'invalid_field'],
    ['prompt with an unknown field', JSON.stringify({ type: 'prompt', content: 'x', client_request_id: 'c-extra', admin: true }), 'invalid_field', 'c-extra'],
    ['attachments not objects', JSON.stringify({ type: 'prompt', content: 'x', client_request_id: 'c-att', attachments: [1] }), 'invalid_field', 'c-att'],
    ['prompt content over 64 KiB', JSON.stringify({ type: 'prompt', content: 'y'.repeat(65 * KiB), client_request_id: 'c-long' }), 'too_large', 'c-long'],
    ['cancel without message_id', JSON.stringify({ type: 'cancel' }), 'invalid_field'],
    ['cancel with a numeric message_id', JSON.stringify({ type: 'cancel', message_id: 7 }), 'invalid_field'],
    ['history with limit 0', JSON.stringify({ type: 'history', before_seq: 5, limit: 0 }), 'invalid_field'],
    ['history with limit 501', JSON.stringify({ type: 'history', before_seq: 5, limit: 501 }), 'invalid_field'],
    ['history with a string before_seq', JSON.stringify({ type: 'history', before_seq: 'x', limit: 5 }), 'invalid_field'],
    ['a 300 KiB frame', JSON.stringify({ type: 'prompt', content: big, client_request_id: 'c-big' }), 'too_large'],
    ['300 KiB of garbage', big, 'too_large'],
  ];
  for (const [what, raw, code, crid] of cases) {
    const mark = client.mark();
    client.sendRaw(raw);
    const err = await client.waitFor((f) => f.type === 'error', 10_000, mark).catch((e) => {
      throw new Error(`${what}: ${e.message}`);
    });
    assert.equal(err.code, code, `${what}: ${JSON.stringify(err)}`);
    assert.equal(typeof err.message, 'string', what);
    if (crid) assert.equal(err.client_request_id, crid, `${what}: client_request_id echoed`);
    assert.ok(client.isOpen, `${what}: the socket was closed (${JSON.stringify(client.closeInfo)})`);
  }
  await sleep(300);
  assert.deepEqual(client.events(), [], 'no event was broadcast');
  assert.deepEqual(client.frames.filter((f) => f.type === 'prompt_ack'), []);
  assert.deepEqual(await allEvents(server, owner, sid), storedBefore, 'no event was stored');
  const messages = await http.get(`/v1/sessions/${sid}/messages`, { key: owner.key });
  assert.deepEqual(messages.json.messages, []);

  await assertPromptStillWorks(client, owner, sid, storedBefore);
});

test('a flood of frames is rate limited; waiting restores service on the same socket', { timeout: 60_000 }, async () => {
  const { owner, created, sid } = await freshRoom('flood');
  const watcher = await createUser(server, 'Watcher', { repos: ['acme/*'] });
  await addMember(server, owner, sid, watcher);
  const { client } = await connect(sid, created.token);
  const w = await connect(sid, (await mintToken(server, watcher, sid)).token);
  const storedBefore = await allEvents(server, owner, sid);

  const mark = client.mark();
  for (let i = 0; i < 100; i++) client.send({ type: 'typing' });
  const limited = await client.waitForCount((f) => f.type === 'error' && f.code === 'rate_limited', 1);
  assert.ok(limited.length >= 1);
  // Count what the 100 frames produced once the burst settled.
  await sleep(1_000);
  const after = client.frames.slice(mark);
  const errors = after.filter((f) => f.type === 'error');
  assert.ok(errors.every((e) => e.code === 'rate_limited'), JSON.stringify(errors.slice(0, 3)));
  assert.ok(errors.length < 100, 'the first frames of the burst were served');
  assert.ok(
    after.some((f) => f.type === 'presence_delta' && f.changes.some((c) => c.change === 'typing' && c.participant.user_id === owner.id)),
    'the frames within the limit were served',
  );
  assert.ok(client.isOpen, 'a flood does not close the socket');
  assert.ok(w.client.isOpen);
  assert.deepEqual(w.client.errors(), [], 'the other user is not limited for it');
  assert.deepEqual(await allEvents(server, owner, sid), storedBefore, 'the flood stored nothing');

  // A different user is not limited by someone else's flood.
  w.client.send({ type: 'prompt', content: 'from the watcher', client_request_id: 'watcher-1' });
  const wAck = await w.client.waitFor((f) => f.type === 'prompt_ack' && f.client_request_id === 'watcher-1');
  assert.equal(wAck.position, 1);
  const storedMid = await allEvents(server, owner, sid);
  assert.deepEqual(seqs(storedMid), range(1, storedBefore.length + 1));

  // Retry one prompt (same client_request_id) until the bucket has refilled.
  const crid = rid('after-flood');
  const ack = await eventually(
    async () => {
      const m = client.mark();
      client.send({ type: 'prompt', content: 'after the flood', client_request_id: crid });
      const answer = await client.waitFor(
        (f) => (f.type === 'prompt_ack' || f.type === 'error') && f.client_request_id === crid,
        10_000,
        m,
      );
      if (answer.type === 'prompt_ack') return answer;
      assert.equal(answer.code, 'rate_limited');
      return null;
    },
    { ms: 20_000, every: 1_000, what: 'service after the flood' },
  );
  assert.equal(ack.position, 2);
  const stored = await allEvents(server, owner, sid);
  assert.deepEqual(seqs(stored), range(1, storedBefore.length + 2));
  assert.deepEqual(stored.filter((e) => e.type === 'message').map((e) => e.message_id), [wAck.message_id, ack.message_id]);
});

test('15 prompts in a burst: the excess is rate limited and never stored', { timeout: 60_000 }, async () => {
  const { owner, created, sid } = await freshRoom('prompt rate');
  const { client } = await connect(sid, created.token);
  const storedBefore = await allEvents(server, owner, sid);
  const crids = range(1, 15).map((i) => `burst-${i}`);
  for (const crid of crids) client.send({ type: 'prompt', content: crid, client_request_id: crid });
  const answers = await Promise.all(
    crids.map((crid) => client.waitFor((f) => (f.type === 'prompt_ack' || f.type === 'error') && f.client_request_id === crid)),
  );
  const acked = answers.filter((a) => a.type === 'prompt_ack').map((a) => a.client_request_id);
  const refused = answers.filter((a) => a.type === 'error');
  assert.deepEqual(acked.slice(0, 10), crids.slice(0, 10), 'the first ten prompts are accepted');
  assert.ok(refused.length >= 1, 'some of the burst is refused');
  for (const r of refused) assert.equal(r.code, 'rate_limited');
  await sleep(300);
  const stored = await allEvents(server, owner, sid);
  const messages = stored.filter((e) => e.type === 'message');
  assert.deepEqual(messages.map((m) => m.client_request_id), acked);
  assert.deepEqual(seqs(stored), range(1, storedBefore.length + acked.length));
});

test('prompts over HTTP are rate limited with 429', { timeout: 60_000 }, async () => {
  const { owner, sid } = await freshRoom('http rate');
  const statuses = [];
  let limited = null;
  for (let i = 0; i < 19 && !limited; i++) {
    const res = await http.post(`/v1/sessions/${sid}/prompts`, { key: owner.key, body: { content: `http burst ${i}` } });
    statuses.push(res.status);
    if (res.status === 429) limited = res;
  }
  assert.ok(limited, `no 429 in ${statuses.join(',')}`);
  assert.deepEqual(statuses.slice(0, 10), Array(10).fill(202));
  assert.equal(errorCode(limited), 'rate_limited');
  const messages = (await allEvents(server, owner, sid)).filter((e) => e.type === 'message');
  assert.equal(messages.length, statuses.filter((s) => s === 202).length);
});

test('a full queue refuses the 21st prompt on WebSocket and HTTP; a cancel makes room', { timeout: 90_000 }, async () => {
  const { owner, created, sid } = await freshRoom('full queue');
  const members = [await createUser(server, 'Q1', { repos: ['acme/*'] }), await createUser(server, 'Q2', { repos: ['acme/*'] })];
  for (const h of members) await addMember(server, owner, sid, h);
  const sockets = [
    (await connect(sid, created.token)).client,
    ...(await Promise.all(members.map(async (h) => (await connect(sid, (await mintToken(server, h, sid)).token)).client))),
  ];
  // 7 + 7 + 6 prompts from three users keeps each under its prompt rate.
  const acks = [];
  for (const [i, count] of [7, 7, 6].entries()) {
    for (let j = 0; j < count; j++) {
      const crid = `q${i}-${j}`;
      sockets[i].send({ type: 'prompt', content: crid, client_request_id: crid });
      acks.push(await sockets[i].waitFor((f) => f.type === 'prompt_ack' && f.client_request_id === crid));
    }
  }
  assert.deepEqual(acks.map((a) => a.position), range(1, 20));
  await sockets[0].waitForSeq(3 + 20);
  const full = await allEvents(server, owner, sid);
  assert.deepEqual(seqs(full), range(1, 23));

  const crid = 'one-too-many';
  sockets[2].send({ type: 'prompt', content: 'one too many', client_request_id: crid });
  const err = await sockets[2].waitFor((f) => f.type === 'error' && f.client_request_id === crid);
  assert.equal(err.code, 'queue_full');
  const overHttp = await http.post(`/v1/sessions/${sid}/prompts`, { key: members[1].key, body: { content: 'also too many' } });
  assert.equal(overHttp.status, 409, overHttp.text);
  assert.equal(errorCode(overHttp), 'queue_full');
  await sleep(300);
  assert.deepEqual(await allEvents(server, owner, sid), full, 'refused prompts are not stored');
  const detail = await http.get(`/v1/sessions/${sid}`, { key: owner.key });
  assert.equal(detail.json.queue.length, 20);

  // Cancelling one frees a place; the same socket's next prompt is accepted at position 20.
  const cancelled = await http.post(`/v1/sessions/${sid}/cancel`, { key: owner.key, body: { message_id: acks[0].message_id } });
  assert.equal(cancelled.status, 200, cancelled.text);
  const retry = 'after-cancel';
  sockets[2].send({ type: 'prompt', content: 'fits now', client_request_id: retry });
  const ack = await sockets[2].waitFor((f) => f.type === 'prompt_ack' && f.client_request_id === retry);
  assert.equal(ack.position, 20);
  const final = await allEvents(server, owner, sid);
  assert.deepEqual(final.slice(0, 23), full);
  assert.deepEqual(final.slice(23).map((e) => [e.seq, e.type]), [[24, 'prompt_finished'], [25, 'message']]);
});

test('bad HTTP bodies get 400, 413 or 422 and change nothing', { timeout: 60_000 }, async () => {
  const { owner, sid } = await freshRoom('bad bodies');
  const other = await createUser(server, 'Other');
  const storedBefore = await allEvents(server, owner, sid);
  const huge = 'z'.repeat(300 * KiB);
  const A = owner.key;
  const ADMIN = server.adminKey;
  const cases = [
    // [what, key, method, path, {body | raw}, status, code]
    ['session: invalid JSON', A, 'POST', '/v1/sessions', { raw: '{"repo":' }, 400, 'invalid_json'],
    ['session: empty body', A, 'POST', '/v1/sessions', { raw: '' }, 400, 'invalid_json'],
    ['session: not an object', A, 'POST', '/v1/sessions', { body: ['acme/demo'] }, 422, 'invalid_field'],
    ['session: repo missing', A, 'POST', '/v1/sessions', { body: { title: 'x' } }, 422, 'invalid_field'],
    ['session: repo is a number', A, 'POST', '/v1/sessions', { body: { repo: 42 } }, 422, 'invalid_field'],
    ['session: repo not owner/name', A, 'POST', '/v1/sessions', { body: { repo: 'acme' } }, 422, 'invalid_field'],
    ['session: bad branch', A, 'POST', '/v1/sessions', { body: { repo: 'acme/demo', branch: 'a..b' } }, 422, 'invalid_field'],
    ['session: unknown field', A, 'POST', '/v1/sessions', { body: { repo: 'acme/demo', sandbox: 'big' } }, 422, 'invalid_field'],
    ['session: body over 256 KiB', A, 'POST', '/v1/sessions', { body: { repo: 'acme/demo', title: huge } }, 413, 'too_large'],
    ['prompt: invalid JSON', A, 'POST', `/v1/sessions/${sid}/prompts`, { raw: 'content=hi' }, 400, 'invalid_json'],
    ['prompt: content missing', A, 'POST', `/v1/sessions/${sid}/prompts`, { body: {} }, 422, 'invalid_field'],
    ['prompt: content empty', A, 'POST', `/v1/sessions/${sid}/prompts`, { body: { content: '' } }, 422, 'invalid_field'],
    ['prompt: content is a list', A, 'POST', `/v1/sessions/${sid}/prompts`, { body: { content: ['a'] } }, 422, 'invalid_field'],
    ['prompt: unknown field', A, 'POST', `/v1/sessions/${sid}/prompts`, { body: { content: 'a', priority: 1 } }, 422, 'invalid_field'],
    ['prompt: unknown source', A, 'POST', `/v1/sessions/${sid}/prompts`, { body: { content: 'a', source: 'fax' } }, 422, 'invalid_field'],
    ['prompt: content over 64 KiB', A, 'POST', `/v1/sessions/${sid}/prompts`, { body: { content: 'c'.repeat(65 * KiB) } }, 413, 'too_large'],
    ['prompt: body over 256 KiB', A, 'POST', `/v1/sessions/${sid}/prompts`, { body: { content: huge } }, 413, 'too_large'],
    ['selection: invalid JSON', A, 'POST', `/v1/sessions/${sid}/selections`, { raw: '{"url"' }, 400, 'invalid_json'],
    ['selection: no elements', A, 'POST', `/v1/sessions/${sid}/selections`, { body: selection({ elements: [] }) }, 422, 'invalid_field'],
    ['selection: javascript url', A, 'POST', `/v1/sessions/${sid}/selections`, { body: selection({ url: 'javascript:alert(1)' }) }, 422, 'invalid_field'],
    ['selection: viewport missing', A, 'POST', `/v1/sessions/${sid}/selections`, { body: selection({ viewport: undefined }) }, 422, 'invalid_field'],
    ['selection: over 1 MiB', A, 'POST', `/v1/sessions/${sid}/selections`, { body: selection({ note: 'n'.repeat(1100 * KiB) }) }, 413, 'too_large'],
    ['selection: 2001 elements', A, 'POST', `/v1/sessions/${sid}/selections`, {
      body: selection({ elements: Array.from({ length: 2001 }, () => ({ tag: 'i', rect: { x: 0, y: 0, width: 1, height: 1 } })) }),
    }, 413, 'too_large'],
    ['cancel: message_id missing', A, 'POST', `/v1/sessions/${sid}/cancel`, { body: {} }, 422, 'invalid_field'],
    ['cancel: invalid JSON', A, 'POST', `/v1/sessions/${sid}/cancel`, { raw: 'nope' }, 400, 'invalid_json'],
    ['cancel: unknown message', A, 'POST', `/v1/sessions/${sid}/cancel`, { body: { message_id: 'msg_nope' } }, 404, 'not_found'],
    ['member: user_id missing', A, 'POST', `/v1/sessions/${sid}/members`, { body: { role: 'member' } }, 422, 'invalid_field'],
    ['member: bad role', A, 'POST', `/v1/sessions/${sid}/members`, { body: { user_id: other.id, role: 'owner' } }, 422, 'invalid_field'],
    ['member: unknown user', A, 'POST', `/v1/sessions/${sid}/members`, { body: { user_id: 'usr_nobody', role: 'member' } }, 404, 'not_found'],
    ['user: invalid JSON', ADMIN, 'POST', '/v1/users', { raw: '{name:' }, 400, 'invalid_json'],
    ['user: email missing', ADMIN, 'POST', '/v1/users', { body: { name: 'X' } }, 422, 'invalid_field'],
    ['user: email invalid', ADMIN, 'POST', '/v1/users', { body: { name: 'X', email: 'nope' } }, 422, 'invalid_field'],
    ['user: bad scope pattern', ADMIN, 'POST', '/v1/users', { body: { name: 'X', email: 'x@example.com', scopes: { repos: ['no-slash'] } } }, 422, 'invalid_field'],
    ['user: unknown field', ADMIN, 'POST', '/v1/users', { body: { name: 'X', email: 'x@example.com', admin: true } }, 422, 'invalid_field'],
    ['user: body over 256 KiB', ADMIN, 'POST', '/v1/users', { body: { name: 'X', email: 'x@example.com', github_login: huge } }, 413, 'too_large'],
    ['user patch: empty', ADMIN, 'PATCH', `/v1/users/${other.id}`, { body: {} }, 422, 'invalid_field'],
    ['user patch: disabled is a string', ADMIN, 'PATCH', `/v1/users/${other.id}`, { body: { disabled: 'yes' } }, 422, 'invalid_field'],
    ['user patch: unknown user', ADMIN, 'PATCH', '/v1/users/usr_nobody', { body: { disabled: true } }, 404, 'not_found'],
  ];
  for (const [what, key, method, path, payload, status, code] of cases) {
    const res = await http.request(method, path, { key, ...payload });
    assert.equal(res.status, status, `${what}: ${res.text.slice(0, 300)}`);
    assert.equal(errorCode(res), code, `${what}: ${res.text.slice(0, 300)}`);
    assert.equal(typeof res.json.error.message, 'string', what);
    assert.deepEqual(Object.keys(res.json), ['error'], `${what}: error body shape`);
  }
  assert.deepEqual(await allEvents(server, owner, sid), storedBefore, 'no event was stored');
  assert.deepEqual((await http.get(`/v1/sessions/${sid}/artifacts`, { key: owner.key })).json.artifacts, []);
  assert.deepEqual((await http.get(`/v1/sessions/${sid}/messages`, { key: owner.key })).json.messages, []);
  const sessions = (await http.get('/v1/sessions?limit=100', { key: owner.key })).json.sessions;
  assert.deepEqual(sessions.map((s) => s.id), [sid], 'no session was created');
  const users = (await http.get('/v1/users', { key: ADMIN })).json.users;
  assert.ok(!users.some((u) => u.name === 'X'), 'no user was created');
  assert.equal((await http.get('/v1/me', { key: other.key })).json.user.disabled, false);

  // A normal prompt still works.
  const ok = await http.post(`/v1/sessions/${sid}/prompts`, { key: owner.key, body: { content: 'fine' } });
  assert.equal(ok.status, 202, ok.text);
  assert.equal(ok.json.position, 1);
  const stored = await allEvents(server, owner, sid);
  assert.deepEqual(seqs(stored), range(1, storedBefore.length + 1));
});

test('unknown routes get 404 and wrong methods 405', { timeout: 30_000 }, async () => {
  const { owner, sid } = await freshRoom('routes');
  const cases = [
    ['GET', '/nope', 404, 'not_found'],
    ['GET', '/v1', 404, 'not_found'],
    ['GET', '/v1/nothing-here', 404, 'not_found'],
    ['GET', `/v1/sessions/${sid}/nothing-here`, 404, 'not_found'],
    ['PUT', '/v1/sessions', 405, 'method_not_allowed'],
    ['DELETE', '/v1/repos', 405, 'method_not_allowed'],
    ['POST', '/v1/me', 405, 'method_not_allowed'],
    ['GET', `/v1/sessions/${sid}/prompts`, 405, 'method_not_allowed'],
    ['GET', `/v1/sessions/${sid}/cancel`, 405, 'method_not_allowed'],
    ['PUT', `/v1/sessions/${sid}`, 405, 'method_not_allowed'],
    ['POST', '/health', 405, 'method_not_allowed'],
  ];
  for (const [method, path, status, code] of cases) {
    const res = await http.request(method, path, { key: owner.key });
    assert.equal(res.status, status, `${method} ${path}: ${res.text.slice(0, 200)}`);
    assert.equal(errorCode(res), code, `${method} ${path}`);
  }
});
