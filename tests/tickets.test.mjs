// Connect tickets: socket and SSE URLs carry a single-use, 30-second ticket instead of a
// participant token or key (`POST /v1/sessions/:id/tickets`); `?token=` still works for one
// release.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import {
  Client,
  b64url,
  createSession,
  createUser,
  errorCode,
  openSse,
  sessionWsUrl,
  signToken,
  useServer,
} from './support/server.mjs';

const ctx = useServer();

/** Signs a ticket the way the Worker does (a key derived from TOKEN_SECRET). */
function signTicket(tokenSecret, { sid, uid, exp, until, n }) {
  const key = createHmac('sha256', tokenSecret).update('connect-ticket').digest();
  const signed = `t1.${b64url(JSON.stringify({ sid, uid, exp, until, n }))}`;
  return `${signed}.${b64url(createHmac('sha256', key).update(signed).digest())}`;
}

const wsWithTicket = (sid, ticket) => `${ctx.server.wsUrl}/v1/sessions/${sid}/ws?ticket=${encodeURIComponent(ticket)}`;

test('a ticket opens one socket, within 30 seconds, and the URLs the API returns carry one', { timeout: 60_000 }, async () => {
  const alice = await createUser(ctx.server, 'Alice', { repos: ['acme/*'] });
  const created = await createSession(ctx.server, alice, { title: 'tickets' });
  const sid = created.session.id;
  const res = await ctx.http.post(`/v1/sessions/${sid}/tickets`, { key: alice.key });
  assert.equal(res.status, 201, res.text);
  const { ticket, expires_at, ws_url, events_url } = res.json;
  assert.match(ticket, /^t1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
  const ttl = Date.parse(expires_at) - Date.now();
  assert.ok(ttl > 0 && ttl <= 31_000, `usable for about 30 s, got ${ttl} ms`);
  assert.equal(new URL(ws_url).searchParams.get('ticket'), ticket);
  assert.equal(new URL(events_url).searchParams.get('ticket'), ticket);
  assert.ok(!ws_url.includes(alice.key) && !ws_url.includes('token='));

  const first = ctx.clients.add(await Client.connect(`${ws_url}&since=0`));
  const welcome = await first.welcome();
  assert.equal(welcome.participant.user_id, alice.id);
  await first.waitForSeq(1);
  // Used once: a second socket with it is closed with 4001 and sees nothing.
  const second = await Client.attempt(ws_url);
  assert.equal(second.opened, true);
  assert.equal(second.close?.code, 4001);
  assert.match(second.close.reason, /used already/);
  assert.deepEqual(second.frames, []);
  // The one POST /v1/sessions returned works the same way.
  const fromCreate = ctx.clients.add(await Client.connect(created.ws_url));
  assert.equal((await fromCreate.welcome()).session.id, sid);
  assert.equal((await Client.attempt(created.ws_url)).close?.code, 4001);
});

test('a ticket opens one SSE stream', { timeout: 60_000 }, async () => {
  const bea = await createUser(ctx.server, 'Bea', { repos: ['acme/*'] });
  const { session } = await createSession(ctx.server, bea, { title: 'sse ticket' });
  const { events_url } = (await ctx.http.post(`/v1/sessions/${session.id}/tickets`, { key: bea.key })).json;
  const stream = await openSse(`${events_url}&since=0`);
  assert.equal(stream.status, 200, stream.text);
  await stream.waitForSeq(1);
  stream.close();
  const again = await openSse(`${events_url}&since=0`);
  assert.equal(again.status, 401, again.text);
  assert.match(again.json.error.message, /used already/);
});

test('tickets that are forged, expired, or for another session are refused; a token in the header trades for one', { timeout: 60_000 }, async () => {
  const cleo = await createUser(ctx.server, 'Cleo', { repos: ['acme/*'] });
  const other = await createUser(ctx.server, 'Otto', { repos: ['acme/*'] });
  const mine = await createSession(ctx.server, cleo, { title: 'mine' });
  const theirs = await createSession(ctx.server, other, { title: 'theirs' });
  const sid = mine.session.id;
  const now = Date.now();
  const claims = { sid, uid: cleo.id, exp: now + 20_000, until: now + 600_000, n: 'a1b2c3d4e5f60718293a4b5c6d7e8f90' };
  const cases = [
    ['the test signs one like the Worker', signTicket(ctx.server.tokenSecret, claims), 'welcome'],
    ['expired', signTicket(ctx.server.tokenSecret, { ...claims, exp: now - 1_000, n: 'b1b2c3d4e5f60718293a4b5c6d7e8f90' }), 'close 4001'],
    ['another session\u2019s', (await ctx.http.post(`/v1/sessions/${theirs.session.id}/tickets`, { key: other.key })).json.ticket, 'close 4001'],
    ['signed with the token secret itself', `t1.${b64url(JSON.stringify(claims))}.${b64url(createHmac('sha256', ctx.server.tokenSecret).update(`t1.${b64url(JSON.stringify(claims))}`).digest())}`, 'HTTP 401'],
    ['a participant token as ticket', mine.token, 'HTTP 401'],
    ['garbage', 't1.x.y', 'HTTP 401'],
  ];
  const got = {};
  for (const [what, ticket] of cases) {
    const outcome = await Client.attempt(wsWithTicket(sid, ticket), { ms: 3_000 });
    const welcomed = outcome.frames.some((f) => f.type === 'welcome');
    got[what] = welcomed ? 'welcome' : outcome.opened ? `close ${outcome.close?.code}` : `HTTP ${outcome.status}`;
  }
  assert.deepEqual(got, Object.fromEntries(cases.map(([what, , expected]) => [what, expected])));

  // A participant token in Authorization (never in a URL) gets a ticket; a foreign one does not.
  const traded = await ctx.http.post(`/v1/sessions/${sid}/tickets`, { headers: { authorization: `Bearer ${mine.token}` } });
  assert.equal(traded.status, 201, traded.text);
  const socket = ctx.clients.add(await Client.connect(traded.json.ws_url));
  assert.equal((await socket.welcome()).participant.user_id, cleo.id);
  const foreign = await ctx.http.post(`/v1/sessions/${sid}/tickets`, { headers: { authorization: `Bearer ${theirs.token}` } });
  assert.equal(foreign.status, 401, foreign.text);
  const forged = signToken('not-the-secret', { sid, uid: cleo.id, exp: now + 60_000 });
  assert.equal((await ctx.http.post(`/v1/sessions/${sid}/tickets`, { headers: { authorization: `Bearer ${forged}` } })).status, 401);
  // A non-member's key: the same 404 as for a session that does not exist.
  const stranger = await ctx.http.post(`/v1/sessions/${sid}/tickets`, { key: other.key });
  assert.equal(stranger.status, 404, stranger.text);
  assert.equal(errorCode(stranger), 'not_found');
  // Archived: no more tickets.
  assert.equal((await ctx.http.del(`/v1/sessions/${sid}`, { key: cleo.key })).status, 200);
  const archived = await ctx.http.post(`/v1/sessions/${sid}/tickets`, { key: cleo.key });
  assert.equal(archived.status, 409, archived.text);
});

test('?token= on the socket and the stream still works (deprecated, one release)', { timeout: 30_000 }, async () => {
  const dora = await createUser(ctx.server, 'Dora', { repos: ['acme/*'] });
  const created = await createSession(ctx.server, dora, { title: 'old clients' });
  const sid = created.session.id;
  const ws = ctx.clients.add(await Client.connect(sessionWsUrl(ctx.server, sid, created.token)));
  assert.equal((await ws.welcome()).session.id, sid);
  const stream = await openSse(`${ctx.server.url}/v1/sessions/${sid}/events?since=0&token=${encodeURIComponent(created.token)}`);
  assert.equal(stream.status, 200, stream.text);
  await stream.waitForSeq(1);
  stream.close();
});
