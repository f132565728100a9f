// Access control: keys, scopes, membership, participant tokens and browser origins.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Client,
  addMember,
  allEvents,
  createSession,
  createUser,
  errorCode,
  rid,
  sessionWsUrl,
  signToken,
  useServer,
} from './support/server.mjs';

let server;
let http;
let alice; // owns sessions X and Y
let bob; // owns session Z; not a member of X
let X;
let Y;
let Z;
const { clients } = useServer({
  setup: async (s, h) => {
    server = s;
    http = h;
    alice = await createUser(server, 'Alice', { repos: ['acme/*'] });
    bob = await createUser(server, 'Bob', { repos: ['*'] });
    X = await createSession(server, alice, { title: 'X' });
    Y = await createSession(server, alice, { title: 'Y', repo: 'acme/web' });
    Z = await createSession(server, bob, { title: 'Z' });
    const res = await http.post(`/v1/sessions/${X.session.id}/prompts`, { key: alice.key, body: { content: 'private work' } });
    assert.equal(res.status, 202, res.text);
  },
});

const selection = {
  url: 'https://app.example.com/dashboard',
  title: 'Dashboard',
  note: 'this card overflows on mobile',
  viewport: { width: 1280, height: 800 },
  elements: [{ tag: 'div', classes: ['card'], id: 'revenue', text: 'Revenue $12,400', rect: { x: 10, y: 20, width: 300, height: 120 }, selector: '#revenue' }],
};

test('a non-member can neither read nor write nor join a session', { timeout: 60_000 }, async () => {
  const sid = X.session.id;
  const before = await allEvents(server, alice, sid);
  const cases = [
    ['GET', `/v1/sessions/${sid}`],
    ['GET', `/v1/sessions/${sid}/events`],
    ['GET', `/v1/sessions/${sid}/events?since=0&limit=10`],
    ['GET', `/v1/sessions/${sid}/messages`],
    ['GET', `/v1/sessions/${sid}/artifacts`],
    ['POST', `/v1/sessions/${sid}/tokens`],
    ['POST', `/v1/sessions/${sid}/prompts`, { content: 'let me in', client_request_id: rid() }],
    ['POST', `/v1/sessions/${sid}/selections`, selection],
    ['POST', `/v1/sessions/${sid}/cancel`, { message_id: before.at(-1).message_id }],
    ['POST', `/v1/sessions/${sid}/stop`],
    ['POST', `/v1/sessions/${sid}/members`, { user_id: bob.id, role: 'member' }],
    ['DELETE', `/v1/sessions/${sid}`],
  ];
  for (const [method, path, body] of cases) {
    const res = await http.request(method, path, { key: bob.key, body });
    assert.equal(res.status, 404, `${method} ${path}: ${res.text}`);
    assert.equal(errorCode(res), 'not_found', `${method} ${path}`);
  }
  // Bob's own session does not reach into X either: X's message id is unknown there.
  const crossCancel = await http.post(`/v1/sessions/${Z.session.id}/cancel`, { key: bob.key, body: { message_id: before.at(-1).message_id } });
  assert.equal(crossCancel.status, 404, crossCancel.text);
  assert.equal(errorCode(crossCancel), 'not_found');
  const zSocket = clients.add(await Client.connect(sessionWsUrl(server, Z.session.id, Z.token)));
  await zSocket.welcome();
  zSocket.send({ type: 'cancel', message_id: before.at(-1).message_id });
  assert.equal((await zSocket.waitFor((f) => f.type === 'error')).code, 'not_found');
  zSocket.send({ type: 'history', before_seq: 1000, limit: 500 });
  const zHistory = await zSocket.waitFor((f) => f.type === 'history');
  assert.ok(zHistory.events.every((e) => e.type !== 'message' || e.content !== 'private work'), 'X leaked into Z');
  const xQueue = (await http.get(`/v1/sessions/${sid}`, { key: alice.key })).json.queue;
  assert.deepEqual(xQueue.map((q) => [q.message_id, q.status]), [[before.at(-1).message_id, 'queued']]);

  const list = await http.get('/v1/sessions?limit=100', { key: bob.key });
  assert.equal(list.status, 200);
  assert.deepEqual(list.json.sessions.map((s) => s.id), [Z.session.id]);
  assert.deepEqual(await allEvents(server, alice, sid), before, 'nothing was appended');
  const detail = await http.get(`/v1/sessions/${sid}`, { key: alice.key });
  assert.deepEqual(detail.json.participants.map((p) => p.user_id), [alice.id]);
  assert.equal(detail.json.session.status, 'active');
});

test('participant tokens are v1.<claims>.<hmac> over {sid, uid, exp}', async () => {
  const [version, payload, mac] = X.token.split('.');
  assert.equal(version, 'v1');
  assert.match(mac, /^[A-Za-z0-9_-]{43}$/, 'an unpadded base64url HMAC-SHA256');
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  assert.deepEqual(Object.keys(claims), ['sid', 'uid', 'exp']);
  assert.equal(claims.sid, X.session.id);
  assert.equal(claims.uid, alice.id);
  assert.equal(claims.exp, Date.parse(X.expires_at));
  assert.equal(signToken(server.tokenSecret, claims), X.token, 'the test signer matches the Worker');
});

test('participant tokens: genuine but expired or foreign ones close with 4001, forged ones get 401', { timeout: 60_000 }, async () => {
  const sid = X.session.id;
  const now = Date.now();
  const [payload, mac] = X.token.split('.').slice(1);
  const tamperedClaims = Buffer.from(JSON.stringify({ sid, uid: bob.id, exp: now + 600_000 })).toString('base64url');
  // A token the coordinator issued that has expired or names another session is accepted and
  // closed with 4001, which a browser can read and act on; anything it did not issue is refused
  // with 401 before a socket is opened.
  const cases = [
    ['token of session Y on X', Y.token, 'close 4001'],
    ['token of another user\'s session on X', Z.token, 'close 4001'],
    ['expired token, right secret', signToken(server.tokenSecret, { sid, uid: alice.id, exp: now - 60_000 }), 'close 4001'],
    ['token signed with another secret', signToken('not-the-secret', { sid, uid: alice.id, exp: now + 600_000 }), 'HTTP 401'],
    ['payload swapped, old signature', `v1.${tamperedClaims}.${mac}`, 'HTTP 401'],
    ['signature dropped', `v1.${payload}`, 'HTTP 401'],
    ['garbage', 'not-a-token', 'HTTP 401'],
    ['garbage with dots', 'v1.x.y', 'HTTP 401'],
    ['other version', `v2.${payload}.${mac}`, 'HTTP 401'],
    ['empty', '', 'HTTP 401'],
  ];
  // Collect every outcome first so a failure shows the whole table.
  const got = {};
  for (const [what, token] of cases) {
    const outcome = await Client.attempt(sessionWsUrl(server, sid, token));
    got[what] = outcome.opened ? `close ${outcome.close?.code ?? 'none'}` : `HTTP ${outcome.status}`;
    assert.ok(!outcome.frames.some((f) => f.type === 'welcome'), `${what}: no welcome`);
    assert.ok(!outcome.frames.some((f) => typeof f.seq === 'number'), `${what}: no events leaked`);
  }
  assert.deepEqual(got, Object.fromEntries(cases.map(([what, , expected]) => [what, expected])));

  // The same format with the right secret and a future expiry is accepted: the refusals above
  // are about the claims, not about how the token is written.
  const forged = signToken(server.tokenSecret, { sid, uid: alice.id, exp: now + 600_000 });
  const ok = clients.add(await Client.connect(sessionWsUrl(server, sid, forged)));
  const welcome = await ok.welcome();
  assert.equal(welcome.participant.user_id, alice.id);
  assert.equal(welcome.session.id, sid);
});

test('a signed token for a user who is not a member does not join', { timeout: 30_000 }, async () => {
  const sid = X.session.id;
  const token = signToken(server.tokenSecret, { sid, uid: bob.id, exp: Date.now() + 600_000 });
  const outcome = await Client.attempt(sessionWsUrl(server, sid, token));
  const refused = outcome.opened ? [4001, 4003].includes(outcome.close?.code) : outcome.status === 403 || outcome.status === 401;
  assert.ok(refused, `got ${JSON.stringify({ opened: outcome.opened, status: outcome.status, close: outcome.close })}`);
  assert.ok(!outcome.frames.some((f) => f.type === 'welcome'));
});

test('browser origins: foreign origin is refused with 403; own origin and no origin are fine', { timeout: 30_000 }, async () => {
  const url = sessionWsUrl(server, X.session.id, X.token);
  for (const origin of ['https://evil.example', 'http://localhost:1', 'null']) {
    const outcome = await Client.attempt(url, { origin });
    assert.equal(outcome.opened, false, `origin ${origin} was accepted`);
    assert.equal(outcome.status, 403, `origin ${origin}: ${outcome.error}`);
  }
  const own = clients.add(await Client.connect(url, { origin: server.url }));
  assert.equal((await own.welcome()).session.id, X.session.id);
  const none = clients.add(await Client.connect(url));
  assert.equal((await none.welcome()).session.id, X.session.id);
});

test('the admin key is refused on user endpoints and a user key on /v1/users', { timeout: 60_000 }, async () => {
  const sid = X.session.id;
  const adminRefused = [
    ['GET', '/v1/me'],
    ['GET', '/v1/repos'],
    ['GET', '/v1/sessions'],
    ['POST', '/v1/sessions', { repo: 'acme/demo' }],
    ['GET', `/v1/sessions/${sid}`],
    ['GET', `/v1/sessions/${sid}/events`],
    ['GET', `/v1/sessions/${sid}/messages`],
    ['POST', `/v1/sessions/${sid}/prompts`, { content: 'admin here' }],
    ['POST', `/v1/sessions/${sid}/tokens`],
    ['POST', `/v1/sessions/${sid}/members`, { user_id: bob.id, role: 'member' }],
    ['DELETE', `/v1/sessions/${sid}`],
  ];
  for (const [method, path, body] of adminRefused) {
    const res = await http.request(method, path, { key: server.adminKey, body });
    assert.equal(res.status, 403, `admin ${method} ${path}: ${res.text}`);
    assert.equal(errorCode(res), 'forbidden', `admin ${method} ${path}`);
  }
  const userRefused = [
    ['GET', '/v1/users'],
    ['POST', '/v1/users', { name: 'Mallory', email: 'm@example.com', scopes: { repos: ['*'] } }],
    ['PATCH', `/v1/users/${alice.id}`, { scopes: { repos: ['*'] } }],
    ['PATCH', `/v1/users/${bob.id}`, { disabled: true }],
  ];
  for (const [method, path, body] of userRefused) {
    const res = await http.request(method, path, { key: alice.key, body });
    assert.equal(res.status, 403, `user ${method} ${path}: ${res.text}`);
    assert.equal(errorCode(res), 'forbidden', `user ${method} ${path}`);
  }
  // Nothing changed: Bob still works, Alice's scopes are the same.
  assert.equal((await http.get('/v1/me', { key: bob.key })).status, 200);
  const me = await http.get('/v1/me', { key: alice.key });
  assert.deepEqual(me.json.user.scopes, { repos: ['acme/*'] });
  const users = await http.get('/v1/users', { key: server.adminKey });
  assert.equal(users.status, 200);
  assert.ok(!JSON.stringify(users.json).includes('Mallory'));
});

test('missing or unknown credentials get 401', { timeout: 30_000 }, async () => {
  const paths = ['/v1/me', '/v1/sessions', `/v1/sessions/${X.session.id}`, '/v1/users', '/v1/repos'];
  const credentials = [
    ['no header', {}],
    ['unknown key', { authorization: 'Bearer sk_not_a_real_key' }],
    ['empty bearer', { authorization: 'Bearer ' }],
    ['basic auth', { authorization: `Basic ${Buffer.from(`x:${alice.key}`).toString('base64')}` }],
    ['participant token as key', { authorization: `Bearer ${X.token}` }],
    ['token secret as key', { authorization: `Bearer ${server.tokenSecret}` }],
  ];
  for (const path of paths) {
    for (const [what, headers] of credentials) {
      const res = await http.get(path, { headers });
      assert.equal(res.status, 401, `${what} on ${path}: ${res.text}`);
      assert.equal(errorCode(res), 'unauthorized', `${what} on ${path}`);
    }
  }
});

test('scopes decide which repos a user sees and opens sessions on', { timeout: 60_000 }, async () => {
  const nobody = await createUser(server, 'Nobody'); // default scopes: deny
  const webOnly = await createUser(server, 'WebOnly', { repos: ['acme/web'] });
  const everything = await createUser(server, 'Everything', { repos: ['*'] });

  const repoNames = async (user) => {
    const res = await http.get('/v1/repos', { key: user.key });
    assert.equal(res.status, 200, res.text);
    return res.json.repos.map((r) => r.name).sort();
  };
  assert.deepEqual(await repoNames(nobody), []);
  assert.deepEqual(await repoNames(webOnly), ['acme/web']);
  assert.deepEqual(await repoNames(alice), ['acme/demo', 'acme/web']);
  assert.deepEqual(await repoNames(everything), ['acme/demo', 'acme/web']);
  const demo = (await http.get('/v1/repos', { key: alice.key })).json.repos.find((r) => r.name === 'acme/demo');
  assert.equal(demo.default_branch, 'main');
  assert.ok(Array.isArray(demo.hints));
  assert.equal(typeof demo.description, 'string');

  const me = await http.get('/v1/me', { key: nobody.key });
  assert.deepEqual(me.json.user.scopes, { repos: [] });

  const cases = [
    [nobody, 'acme/demo', 403, 'forbidden'],
    [webOnly, 'acme/demo', 403, 'forbidden'],
    [webOnly, 'acme/web', 201, null],
    [everything, 'other/repo', 422, 'invalid_field'],
    [everything, 'acme/demo', 201, null],
  ];
  for (const [user, repo, status, code] of cases) {
    const res = await http.post('/v1/sessions', { key: user.key, body: { repo } });
    assert.equal(res.status, status, `${user.name} on ${repo}: ${res.text}`);
    if (code) assert.equal(errorCode(res), code);
    else assert.equal(res.json.session.repo, repo);
  }
  assert.deepEqual((await http.get('/v1/sessions', { key: nobody.key })).json.sessions, []);

  // Granting a scope takes effect on the next request.
  const patched = await http.patch(`/v1/users/${nobody.id}`, { key: server.adminKey, body: { scopes: { repos: ['acme/demo'] } } });
  assert.equal(patched.status, 200, patched.text);
  assert.deepEqual(await repoNames(nobody), ['acme/demo']);
  const opened = await http.post('/v1/sessions', { key: nobody.key, body: { repo: 'acme/demo' } });
  assert.equal(opened.status, 201, opened.text);
  const still = await http.post('/v1/sessions', { key: nobody.key, body: { repo: 'acme/web' } });
  assert.equal(still.status, 403);
});

test('a disabled user is refused with 401 until enabled again', { timeout: 30_000 }, async () => {
  const carol = await createUser(server, 'Carol', { repos: ['acme/demo'] });
  assert.equal((await http.get('/v1/me', { key: carol.key })).status, 200);
  const session = await createSession(server, carol);
  const off = await http.patch(`/v1/users/${carol.id}`, { key: server.adminKey, body: { disabled: true } });
  assert.equal(off.status, 200, off.text);
  for (const [method, path] of [['GET', '/v1/me'], ['GET', '/v1/sessions'], ['POST', '/v1/sessions']]) {
    const res = await http.request(method, path, { key: carol.key, body: method === 'POST' ? { repo: 'acme/demo' } : undefined });
    assert.equal(res.status, 401, `${method} ${path}: ${res.text}`);
    assert.equal(errorCode(res), 'unauthorized');
  }
  // A participant token minted before the user was disabled does not join either.
  const outcome = await Client.attempt(sessionWsUrl(server, session.session.id, session.token));
  assert.ok(!outcome.frames.some((f) => f.type === 'welcome'), 'a disabled user joined with an old token');
  const refused = outcome.opened ? [4001, 4003].includes(outcome.close?.code) : [401, 403].includes(outcome.status);
  assert.ok(refused, JSON.stringify({ opened: outcome.opened, status: outcome.status, close: outcome.close }));

  const on = await http.patch(`/v1/users/${carol.id}`, { key: server.adminKey, body: { disabled: false } });
  assert.equal(on.status, 200, on.text);
  assert.equal((await http.get('/v1/me', { key: carol.key })).status, 200);
});

test('members read and write; only the owner adds members or archives', { timeout: 60_000 }, async () => {
  const dave = await createUser(server, 'Dave', { repos: ['*'] });
  const erin = await createUser(server, 'Erin');
  const s = await createSession(server, dave, { title: 'members' });
  const sid = s.session.id;
  await addMember(server, dave, sid, alice);

  assert.equal((await http.get(`/v1/sessions/${sid}`, { key: alice.key })).status, 200);
  const tok = await http.post(`/v1/sessions/${sid}/tokens`, { key: alice.key });
  assert.equal(tok.status, 200, tok.text);
  const prompt = await http.post(`/v1/sessions/${sid}/prompts`, { key: alice.key, body: { content: 'member prompt' } });
  assert.equal(prompt.status, 202, prompt.text);

  const before = await allEvents(server, dave, sid);
  const addErin = await http.post(`/v1/sessions/${sid}/members`, { key: alice.key, body: { user_id: erin.id, role: 'member' } });
  assert.equal(addErin.status, 403, addErin.text);
  assert.equal(errorCode(addErin), 'forbidden');
  const archive = await http.del(`/v1/sessions/${sid}`, { key: alice.key });
  assert.equal(archive.status, 403, archive.text);
  assert.equal(errorCode(archive), 'forbidden');
  assert.deepEqual(await allEvents(server, dave, sid), before);
  assert.equal((await http.get(`/v1/sessions/${sid}`, { key: erin.key })).status, 404);
  assert.equal((await http.get(`/v1/sessions/${sid}`, { key: dave.key })).json.session.status, 'active');

  // The token a member gets is bound to them.
  const ws = clients.add(await Client.connect(sessionWsUrl(server, sid, tok.json.token)));
  const welcome = await ws.welcome();
  assert.equal(welcome.participant.user_id, alice.id);
  assert.equal(welcome.participant.name, alice.name);
});
