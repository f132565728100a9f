// The HTTP API as a client uses it: health, users, sessions, members, tokens, prompts,
// selections, events, messages, artifacts, cancel and archive.

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
  openSse,
  range,
  seqs,
  sessionWsUrl,
  useServer,
} from './support/server.mjs';

let server;
let http;
const secretsSeen = new Set();
const { clients } = useServer({
  setup: async (s, h) => {
    server = s;
    http = h;
    secretsSeen.add(server.adminKey);
    secretsSeen.add(server.tokenSecret);
  },
});

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]00:00)$/;

async function user(name, scopes = { repos: ['acme/*'] }) {
  const u = await createUser(server, name, scopes);
  secretsSeen.add(u.key);
  return u;
}

const selectionBody = {
  url: 'https://app.example.com/dashboard',
  title: 'Dashboard',
  note: 'this card overflows on mobile',
  viewport: { width: 1280, height: 800 },
  elements: [
    {
      tag: 'div',
      classes: ['card'],
      id: 'revenue',
      text: 'Revenue $12,400',
      rect: { x: 10, y: 20, width: 300, height: 120 },
      react_component: 'RevenueCard',
      selector: '#revenue',
    },
  ],
};

test('GET /health', async () => {
  const res = await http.get('/health');
  assert.equal(res.status, 200);
  assert.equal(res.json.status, 'healthy');
  for (const field of ['env', 'version', 'provider']) assert.ok(field in res.json, `health has ${field}`);
  assert.match(res.headers.get('content-type'), /^application\/json/);
});

test('deep health: the admin key only; with nothing configured every check says not_configured', async () => {
  const refused = await http.get('/health?deep=1');
  assert.equal(refused.status, 401);
  assert.equal(errorCode(refused), 'unauthorized');
  const deep = await http.get('/health?deep=1', { key: server.adminKey });
  assert.equal(deep.status, 200);
  assert.equal(deep.json.deep.status, 'ok');
  for (const name of ['provider', 'github', 'slack', 'classifier']) {
    assert.deepEqual(deep.json.deep.checks[name], { status: 'not_configured', latency_ms: null }, name);
  }
});

test('users: create, list, me', { timeout: 30_000 }, async () => {
  const created = await http.post('/v1/users', {
    key: server.adminKey,
    body: { name: 'Grace', email: 'grace@example.com', github_login: 'grace', scopes: { repos: ['acme/web'] } },
  });
  assert.equal(created.status, 201, created.text);
  const { user: u, api_key } = created.json;
  secretsSeen.add(api_key);
  assert.equal(typeof api_key, 'string');
  assert.ok(api_key.length >= 20, 'a long api key');
  assert.deepEqual(
    { name: u.name, email: u.email, github_login: u.github_login, scopes: u.scopes, disabled: u.disabled },
    { name: 'Grace', email: 'grace@example.com', github_login: 'grace', scopes: { repos: ['acme/web'] }, disabled: false },
  );
  assert.match(u.created_at, RFC3339);

  const me = await http.get('/v1/me', { key: api_key });
  assert.equal(me.status, 200, me.text);
  assert.deepEqual(me.json.user, u);

  const list = await http.get('/v1/users', { key: server.adminKey });
  assert.equal(list.status, 200);
  const listed = list.json.users.find((x) => x.id === u.id);
  assert.deepEqual(listed, u);
  assert.ok(!list.text.includes(api_key), 'the key is shown once, at creation');

  const plain = await http.post('/v1/users', { key: server.adminKey, body: { name: 'Plain', email: 'plain@example.com' } });
  assert.equal(plain.status, 201);
  assert.deepEqual(plain.json.user.scopes, { repos: [] });
  assert.notEqual(plain.json.api_key, api_key);
  secretsSeen.add(plain.json.api_key);
});

test('sessions: create, defaults, ws_url, prompt on create', { timeout: 30_000 }, async () => {
  const heidi = await user('Heidi');
  const res = await http.post('/v1/sessions', { key: heidi.key, body: { repo: 'acme/web', title: 'Fix the header' } });
  assert.equal(res.status, 201, res.text);
  const { session, participant, token, expires_at, ws_url } = res.json;
  secretsSeen.add(token);
  assert.equal(session.repo, 'acme/web');
  assert.equal(session.branch, 'main', 'the default branch of the repo');
  assert.equal(session.title, 'Fix the header');
  assert.equal(session.owner_id, heidi.id);
  assert.equal(session.status, 'active');
  assert.match(session.created_at, RFC3339);
  assert.equal(typeof session.id, 'string');
  assert.deepEqual({ user_id: participant.user_id, name: participant.name }, { user_id: heidi.id, name: 'Heidi' });
  assert.match(expires_at, RFC3339);
  const ttl = Date.parse(expires_at) - Date.now();
  assert.ok(ttl > 60_000 && ttl <= 15 * 60_000 + 60_000, `token valid for about 15 minutes, got ${ttl} ms`);
  const wsUrl = new URL(ws_url);
  assert.equal(wsUrl.protocol, 'ws:');
  assert.equal(wsUrl.searchParams.get('token'), null, 'no token in a URL');
  assert.equal(wsUrl.searchParams.get('ticket'), res.json.ticket);
  assert.equal(wsUrl.pathname, `/v1/sessions/${session.id}/ws`);

  // ws_url is usable as given.
  const ws = clients.add(await Client.connect(ws_url));
  const welcome = await ws.welcome();
  assert.deepEqual(welcome.participant, participant);
  assert.equal(welcome.session.id, session.id);
  assert.equal(welcome.last_seq, 1);

  const withBranch = await http.post('/v1/sessions', { key: heidi.key, body: { repo: 'acme/demo', branch: 'feature/x' } });
  assert.equal(withBranch.status, 201, withBranch.text);
  assert.equal(withBranch.json.session.branch, 'feature/x');
  assert.equal(typeof withBranch.json.session.title, 'string');

  const withPrompt = await http.post('/v1/sessions', { key: heidi.key, body: { repo: 'acme/demo', prompt: 'start here' } });
  assert.equal(withPrompt.status, 201, withPrompt.text);
  const sid = withPrompt.json.session.id;
  const events = await allEvents(server, heidi, sid);
  assert.deepEqual(events.map((e) => [e.seq, e.type]), [[1, 'participant_joined'], [2, 'message']]);
  assert.equal(events[1].content, 'start here');
  assert.equal(events[1].source, 'api');
  assert.equal(events[1].author.name, 'Heidi');
  const detail = await http.get(`/v1/sessions/${sid}`, { key: heidi.key });
  assert.deepEqual(
    detail.json.queue.map((q) => [q.message_id, q.status, q.position, q.content]),
    [[events[1].message_id, 'queued', 1, 'start here']],
  );
});

test('sessions: list newest first with limit and cursor; only own and joined', { timeout: 30_000 }, async () => {
  const ivan = await user('Ivan');
  const judy = await user('Judy');
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push((await createSession(server, ivan, { title: `s${i}` })).session.id);
  const judys = await createSession(server, judy, { title: 'judy' });
  await addMember(server, judy, judys.session.id, ivan);
  await createSession(server, judy, { title: 'not shared' });
  const expected = [judys.session.id, ...ids.slice().reverse()];

  const seen = [];
  let cursor = null;
  for (let page = 0; page < 10; page++) {
    const q = `?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const res = await http.get(`/v1/sessions${q}`, { key: ivan.key });
    assert.equal(res.status, 200, res.text);
    assert.ok(res.json.sessions.length <= 2);
    seen.push(...res.json.sessions.map((s) => s.id));
    cursor = res.json.next_cursor;
    if (!cursor) break;
  }
  assert.deepEqual(seen, expected);
  const all = await http.get('/v1/sessions?limit=100', { key: ivan.key });
  assert.deepEqual(all.json.sessions.map((s) => s.id), expected);
  assert.equal(all.json.next_cursor, null);
  const s0 = all.json.sessions.at(-1);
  assert.deepEqual(
    { repo: s0.repo, branch: s0.branch, title: s0.title, owner_id: s0.owner_id, status: s0.status },
    { repo: 'acme/demo', branch: 'main', title: 's0', owner_id: ivan.id, status: 'active' },
  );
  for (const limit of ['0', '101', 'x']) {
    const res = await http.get(`/v1/sessions?limit=${limit}`, { key: ivan.key });
    assert.equal(res.status, 422, `limit=${limit}: ${res.text}`);
    assert.equal(errorCode(res), 'invalid_field');
  }
});

test('members and tokens', { timeout: 30_000 }, async () => {
  const ken = await user('Ken');
  const lea = await user('Lea', { repos: [] });
  const s = await createSession(server, ken);
  const sid = s.session.id;

  assert.equal((await http.get(`/v1/sessions/${sid}`, { key: lea.key })).status, 404);
  // Membership needs the session's repository in the member's scopes: Lea has none yet.
  const refused = await http.post(`/v1/sessions/${sid}/members`, { key: ken.key, body: { user_id: lea.id, role: 'member' } });
  assert.equal(refused.status, 403, refused.text);
  assert.equal(refused.json.error.message, 'Lea cannot join this session: their scopes do not include acme/demo');
  const granted = await http.patch(`/v1/users/${lea.id}`, { key: server.adminKey, body: { scopes: { repos: ['acme/demo'] } } });
  assert.equal(granted.status, 200, granted.text);
  const added = await http.post(`/v1/sessions/${sid}/members`, { key: ken.key, body: { user_id: lea.id, role: 'member' } });
  assert.equal(added.status, 201, added.text);
  const events = await allEvents(server, ken, sid);
  assert.deepEqual(events.map((e) => [e.seq, e.type, e.participant.user_id, e.participant.name]), [
    [1, 'participant_joined', ken.id, 'Ken'],
    [2, 'participant_joined', lea.id, 'Lea'],
  ]);

  const detail = await http.get(`/v1/sessions/${sid}`, { key: lea.key });
  assert.equal(detail.status, 200, detail.text);
  assert.deepEqual(detail.json.session, s.session);
  assert.deepEqual(
    detail.json.participants.map((p) => ({ user_id: p.user_id, name: p.name, online: p.online })),
    [
      { user_id: ken.id, name: 'Ken', online: false },
      { user_id: lea.id, name: 'Lea', online: false },
    ],
  );
  assert.deepEqual(detail.json.queue, []);
  assert.equal(detail.json.sandbox, null);
  assert.equal(detail.json.last_seq, 2);
  assert.deepEqual((await http.get('/v1/sessions', { key: lea.key })).json.sessions.map((x) => x.id), [sid]);

  const tok = await http.post(`/v1/sessions/${sid}/tokens`, { key: lea.key });
  assert.equal(tok.status, 200, tok.text);
  secretsSeen.add(tok.json.token);
  assert.match(tok.json.expires_at, RFC3339);
  // The URLs carry a single-use connect ticket, never the token.
  assert.equal(new URL(tok.json.ws_url).searchParams.get('token'), null);
  assert.equal(new URL(tok.json.ws_url).searchParams.get('ticket'), tok.json.ticket);
  assert.equal(new URL(tok.json.events_url).searchParams.get('ticket'), tok.json.ticket);
  assert.match(tok.json.ticket, /^t1\./);
  const ws = clients.add(await Client.connect(tok.json.ws_url));
  const welcome = await ws.welcome();
  assert.equal(welcome.participant.user_id, lea.id);
  await eventually(async () => {
    const d = await http.get(`/v1/sessions/${sid}`, { key: ken.key });
    return d.json.participants.find((p) => p.user_id === lea.id)?.online === true;
  }, { what: 'Lea online' });
});

test('prompts over HTTP: 202, source, idempotency, messages', { timeout: 30_000 }, async () => {
  const mia = await user('Mia');
  const s = await createSession(server, mia);
  const sid = s.session.id;
  const ws = clients.add(await Client.connect(sessionWsUrl(server, sid, s.token)));
  await ws.welcome();

  const first = await http.post(`/v1/sessions/${sid}/prompts`, { key: mia.key, body: { content: 'plain', client_request_id: 'http-1' } });
  assert.equal(first.status, 202, first.text);
  assert.equal(first.json.position, 1);
  const again = await http.post(`/v1/sessions/${sid}/prompts`, { key: mia.key, body: { content: 'plain', client_request_id: 'http-1' } });
  assert.equal(again.status, 202, again.text);
  assert.equal(again.json.message_id, first.json.message_id);
  // Only the Slack integration says a prompt came from Slack; a client may not claim it.
  const claimed = await http.post(`/v1/sessions/${sid}/prompts`, { key: mia.key, body: { content: 'from slack', source: 'slack' } });
  assert.equal(claimed.status, 422, claimed.text);
  assert.equal(claimed.json.error.code, 'invalid_field');
  assert.match(claimed.json.error.message, /slack/);
  const slack = await http.post(`/v1/sessions/${sid}/prompts`, {
    key: mia.key,
    body: { content: 'from slack', source: 'extension', attachments: [{ kind: 'link', url: 'https://example.com' }] },
  });
  assert.equal(slack.status, 202, slack.text);
  assert.equal(slack.json.position, 2);

  const events = await ws.waitForSeq(3);
  assert.deepEqual(seqs(events), [2, 3]);
  assert.deepEqual(
    events.map((e) => [e.message_id, e.source, e.content, e.author.name]),
    [
      [first.json.message_id, 'api', 'plain', 'Mia'],
      [slack.json.message_id, 'extension', 'from slack', 'Mia'],
    ],
  );
  assert.equal(events[0].client_request_id, 'http-1');
  assert.deepEqual(events[1].attachments, [{ kind: 'link', url: 'https://example.com' }]);
  assert.deepEqual(events[1].selection_ids, []);

  const messages = await http.get(`/v1/sessions/${sid}/messages`, { key: mia.key });
  assert.equal(messages.status, 200);
  assert.deepEqual(
    messages.json.messages.map((m) => [m.id, m.seq, m.content, m.author.name, m.source, m.status, m.client_request_id ?? null]),
    [
      [first.json.message_id, 2, 'plain', 'Mia', 'api', 'queued', 'http-1'],
      [slack.json.message_id, 3, 'from slack', 'Mia', 'extension', 'queued', null],
    ],
  );
  for (const m of messages.json.messages) assert.match(m.created_at, RFC3339);
});

test('selections become dom_selection artifacts, text cut to 100 characters', { timeout: 30_000 }, async () => {
  const ned = await user('Ned');
  const s = await createSession(server, ned);
  const sid = s.session.id;
  const long = 'é'.repeat(250);
  const body = structuredClone(selectionBody);
  body.elements.push({ tag: 'p', text: long, rect: { x: 0, y: 0, width: 10, height: 10 } });
  const res = await http.post(`/v1/sessions/${sid}/selections`, { key: ned.key, body });
  assert.equal(res.status, 201, res.text);
  const artifactId = res.json.artifact_id;
  assert.equal(typeof artifactId, 'string');

  const events = await allEvents(server, ned, sid);
  assert.deepEqual(seqs(events), [1, 2]);
  const ev = events[1];
  assert.equal(ev.type, 'artifact_created');
  assert.equal(ev.artifact.id, artifactId);
  assert.equal(ev.artifact.type, 'dom_selection');
  const { data } = ev.artifact;
  assert.equal(data.url, body.url);
  assert.equal(data.title, 'Dashboard');
  assert.equal(data.note, body.note);
  assert.deepEqual(data.viewport, body.viewport);
  assert.equal(data.elements.length, 2);
  assert.deepEqual(data.elements[0], body.elements[0]);
  assert.equal(data.elements[1].text, 'é'.repeat(100));

  const artifacts = await http.get(`/v1/sessions/${sid}/artifacts`, { key: ned.key });
  assert.equal(artifacts.status, 200);
  assert.equal(artifacts.json.artifacts.length, 1);
  assert.equal(artifacts.json.artifacts[0].id, artifactId);
  assert.equal(artifacts.json.artifacts[0].type, 'dom_selection');
  assert.deepEqual(artifacts.json.artifacts[0].data, data);

  const p = await http.post(`/v1/sessions/${sid}/prompts`, { key: ned.key, body: { content: 'fix this card', selection_ids: [artifactId] } });
  assert.equal(p.status, 202, p.text);
  const after = await allEvents(server, ned, sid);
  assert.deepEqual(after[2].selection_ids, [artifactId]);
});

test('events: since, limit and has_more', { timeout: 30_000 }, async () => {
  const olga = await user('Olga');
  const s = await createSession(server, olga);
  const sid = s.session.id;
  for (let i = 0; i < 6; i++) {
    const res = await http.post(`/v1/sessions/${sid}/selections`, { key: olga.key, body: selectionBody });
    assert.equal(res.status, 201, res.text);
  }
  const cases = [
    // [query, seqs, has_more]
    ['', range(1, 7), false],
    ['?since=0', range(1, 7), false],
    ['?since=3', [4, 5, 6, 7], false],
    ['?since=2&limit=2', [3, 4], true],
    ['?since=5&limit=2', [6, 7], false],
    ['?since=7', [], false],
    ['?since=100', [], false],
    ['?limit=1000', range(1, 7), false],
  ];
  for (const [q, expected, hasMore] of cases) {
    const res = await http.get(`/v1/sessions/${sid}/events${q}`, { key: olga.key });
    assert.equal(res.status, 200, `${q}: ${res.text}`);
    assert.deepEqual(seqs(res.json.events), expected, q);
    assert.equal(res.json.has_more, hasMore, `${q} has_more`);
  }
  for (const q of ['?limit=0', '?limit=1001', '?since=-1', '?since=abc']) {
    const res = await http.get(`/v1/sessions/${sid}/events${q}`, { key: olga.key });
    assert.equal(res.status, 422, `${q}: ${res.text}`);
    assert.equal(errorCode(res), 'invalid_field', q);
  }
  // Past 100 events the default page stops at 100. Selections are rate-limited per user (10
  // per 10 s), so ten members make the other 96 events: their joins and 86 selections.
  const helpers = [];
  for (let i = 0; i < 10; i++) {
    const helper = await user(`Olga's helper ${i}`);
    await addMember(server, olga, sid, helper);
    helpers.push(helper);
  }
  await Promise.all(
    helpers.flatMap((helper, i) =>
      range(1, i < 6 ? 9 : 8).map(async () => {
        const res = await http.post(`/v1/sessions/${sid}/selections`, { key: helper.key, body: selectionBody });
        assert.equal(res.status, 201, res.text);
      }),
    ),
  );
  const firstPage = await http.get(`/v1/sessions/${sid}/events`, { key: olga.key });
  assert.deepEqual(seqs(firstPage.json.events), range(1, 100));
  assert.equal(firstPage.json.has_more, true);
  const rest = await http.get(`/v1/sessions/${sid}/events?since=100`, { key: olga.key });
  assert.deepEqual(seqs(rest.json.events), range(101, 103));
  assert.equal(rest.json.has_more, false);

  const all = (await http.get(`/v1/sessions/${sid}/events`, { key: olga.key })).json.events;
  for (const e of all) {
    assert.match(e.ts, RFC3339);
    assert.equal(typeof e.type, 'string');
  }
});

test('cancel over HTTP', { timeout: 30_000 }, async () => {
  const pam = await user('Pam');
  const s = await createSession(server, pam);
  const sid = s.session.id;
  const p1 = await http.post(`/v1/sessions/${sid}/prompts`, { key: pam.key, body: { content: 'one' } });
  const p2 = await http.post(`/v1/sessions/${sid}/prompts`, { key: pam.key, body: { content: 'two' } });
  assert.deepEqual([p1.json.position, p2.json.position], [1, 2]);

  const res = await http.post(`/v1/sessions/${sid}/cancel`, { key: pam.key, body: { message_id: p1.json.message_id } });
  assert.equal(res.status, 200, res.text);
  const events = await allEvents(server, pam, sid);
  assert.deepEqual(events.map((e) => [e.seq, e.type]), [[1, 'participant_joined'], [2, 'message'], [3, 'message'], [4, 'prompt_finished']]);
  assert.equal(events[3].message_id, p1.json.message_id);
  assert.equal(events[3].status, 'cancelled');

  const detail = await http.get(`/v1/sessions/${sid}`, { key: pam.key });
  assert.deepEqual(detail.json.queue.map((q) => [q.message_id, q.position]), [[p2.json.message_id, 1]]);

  const again = await http.post(`/v1/sessions/${sid}/cancel`, { key: pam.key, body: { message_id: p1.json.message_id } });
  assert.equal(again.status, 409, again.text);
  assert.equal(errorCode(again), 'conflict');
  assert.deepEqual(await allEvents(server, pam, sid), events);
});

test('archive: sockets close 4009, prompts and joins are refused, history stays readable', { timeout: 60_000 }, async () => {
  const quinn = await user('Quinn');
  const rita = await user('Rita');
  const s = await createSession(server, quinn);
  const sid = s.session.id;
  await addMember(server, quinn, sid, rita);
  const ritaToken = (await mintToken(server, rita, sid)).token;
  const a = clients.add(await Client.connect(sessionWsUrl(server, sid, s.token)));
  const b = clients.add(await Client.connect(sessionWsUrl(server, sid, ritaToken)));
  await Promise.all([a.welcome(), b.welcome()]);
  const queued = await http.post(`/v1/sessions/${sid}/prompts`, { key: rita.key, body: { content: 'queued before archive' } });
  assert.equal(queued.status, 202);
  await b.waitForSeq(3);

  const res = await http.del(`/v1/sessions/${sid}`, { key: quinn.key });
  assert.equal(res.status, 200, res.text);
  const [ca, cb] = await Promise.all([a.waitClose(10_000), b.waitClose(10_000)]);
  assert.equal(ca?.code, 4009);
  assert.equal(cb?.code, 4009);

  const detail = await http.get(`/v1/sessions/${sid}`, { key: rita.key });
  assert.equal(detail.status, 200, detail.text);
  assert.equal(detail.json.session.status, 'archived');
  assert.deepEqual(detail.json.queue, [], 'archiving empties the queue');
  const events = await allEvents(server, rita, sid);
  assert.deepEqual(seqs(events).slice(0, 3), [1, 2, 3]);
  assert.deepEqual(seqs(events), range(1, events.length), 'no gap after archiving');
  const finished = events.find((e) => e.type === 'prompt_finished' && e.message_id === queued.json.message_id);
  assert.equal(finished?.status, 'cancelled', 'a prompt still queued is finished as cancelled');
  assert.equal(finished?.error, 'the session was archived');

  const dave = await user('Dave');
  const join = await http.post(`/v1/sessions/${sid}/members`, { key: quinn.key, body: { user_id: dave.id, role: 'member' } });
  assert.equal(join.status, 409, join.text);
  const cancel = await http.post(`/v1/sessions/${sid}/cancel`, { key: quinn.key, body: { message_id: queued.json.message_id } });
  assert.equal(cancel.status, 409, cancel.text);

  const prompt = await http.post(`/v1/sessions/${sid}/prompts`, { key: rita.key, body: { content: 'too late' } });
  assert.equal(prompt.status, 409, prompt.text);
  assert.equal(errorCode(prompt), 'conflict');
  const late = await Client.attempt(sessionWsUrl(server, sid, ritaToken));
  assert.equal(late.opened, true, late.error);
  assert.equal(late.close?.code, 4009);
  assert.ok(!late.frames.some((f) => f.type === 'message'));
  assert.deepEqual(await allEvents(server, rita, sid), events, 'refused requests stored nothing');

  const stream = await openSse(`${server.url}/v1/sessions/${sid}/events?since=1`, { key: rita.key });
  try {
    assert.equal(stream.status, 200, stream.text);
    await stream.waitForSeq(events.at(-1).seq);
    assert.deepEqual(stream.events.map((e) => e.data), events.slice(1));
  } finally {
    stream.close();
  }

  const listed = (await http.get('/v1/sessions?limit=100', { key: quinn.key })).json.sessions.find((x) => x.id === sid);
  assert.equal(listed.status, 'archived');
  assert.equal((await http.get(`/v1/sessions/${sid}/messages`, { key: quinn.key })).status, 200);
});

test('without GitHub configured: pull requests are not_configured, sign-in is not offered, the rest is as before', { timeout: 30_000 }, async () => {
  const ann = await user('Ann');
  const s = await createSession(server, ann);
  const pr = await http.post(`/v1/sessions/${s.session.id}/pull-request`, { key: ann.key, body: {} });
  assert.equal(pr.status, 409);
  assert.equal(errorCode(pr), 'not_configured');
  assert.match(pr.json.error.message, /GitHub/);
  assert.deepEqual((await http.get('/v1/auth/methods')).json, { api_key: true, github: false });
  const login = await http.get('/v1/auth/github/login');
  assert.equal(errorCode(login), 'not_configured');
  assert.equal((await http.post('/v1/github/webhook', { body: {} })).status, 404);
  const me = await http.get('/v1/me', { key: ann.key });
  assert.deepEqual(me.json.github, { login: null, connected: false });
  assert.equal((await http.get('/health')).json.github, undefined);
  // Prompts carry no branch to push to when there is no git host.
  const prompt = await http.post(`/v1/sessions/${s.session.id}/prompts`, { key: ann.key, body: { content: 'hello' } });
  assert.equal(prompt.status, 202);
});

test('without Slack configured: both Slack endpoints answer 404 and /health says nothing of Slack', { timeout: 30_000 }, async () => {
  for (const path of ['/v1/slack/events', '/v1/slack/interactions']) {
    const res = await http.post(path, { raw: '{"type":"url_verification","challenge":"c"}' });
    assert.equal(res.status, 404, path);
    assert.equal(errorCode(res), 'not_found');
  }
  assert.equal((await http.get('/health')).json.slack, undefined);
});

test('no secret appears in responses, events or the Worker log', { timeout: 30_000 }, async () => {
  const sam = await user('Sam');
  const s = await createSession(server, sam);
  secretsSeen.add(s.token);
  const sid = s.session.id;
  // A refused token must not be logged either (how it is refused is access.test.mjs's concern).
  const bad = await Client.attempt(sessionWsUrl(server, sid, `${s.token}x`));
  assert.ok(!bad.frames.some((f) => f.type === 'welcome'));
  const texts = [
    (await http.get(`/v1/sessions/${sid}`, { key: sam.key })).text,
    (await http.get(`/v1/sessions/${sid}/events`, { key: sam.key })).text,
    (await http.get('/v1/sessions', { key: sam.key })).text,
    (await http.get('/v1/users', { key: server.adminKey })).text,
    (await http.get('/v1/me', { key: sam.key })).text,
    (await http.get('/health')).text,
    (await http.get('/v1/me', { key: `${sam.key}x` })).text,
  ];
  // The dev proxy's own request lines ("[wrangler:info] GET /…?token=…") are not the Worker's log.
  const workerLog = server
    .log()
    .split('\n')
    .filter((line) => !/^\s*\[wrangler:/.test(line))
    .join('\n');
  for (const secret of secretsSeen) {
    for (const text of texts) assert.ok(!text.includes(secret), `a secret leaked into a response: ${text.slice(0, 200)}`);
    assert.ok(!workerLog.includes(secret), 'a secret or token appears in the Worker log');
  }
});
