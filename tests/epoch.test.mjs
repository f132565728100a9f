// A log with an epoch (PROTOCOL.md section 2): `welcome` names the session's log (`epoch`,
// random and fixed for its life) and says whether it could continue from the client's `since`
// (`recovered`); a `since` beyond the log or an `epoch` of another log replays from the
// beginning, so a client can tell a reset log from the one it was reading.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Client, allEvents, mintToken, range, rid, roomOfTwo, seqs, useServer } from './support/server.mjs';

const ctx = useServer();

function url(sid, token, params) {
  const q = new URLSearchParams({ token, ...params });
  return `${ctx.server.wsUrl}/v1/sessions/${sid}/ws?${q}`;
}

async function join(sid, token, params = {}) {
  const client = ctx.clients.add(await Client.connect(url(sid, token, params)));
  const welcome = await client.welcome();
  return { client, welcome };
}

async function sessionWithEvents(title) {
  const room = await roomOfTwo(ctx.server, title);
  const { client } = await join(room.sid, room.created.token);
  for (const content of ['one', 'two', 'three']) {
    const client_request_id = rid();
    client.send({ type: 'prompt', content, client_request_id });
    await client.waitFor((f) => f.type === 'prompt_ack' && f.client_request_id === client_request_id);
  }
  await client.closeAndWait();
  const stored = await allEvents(ctx.server, room.alice, room.sid);
  return { ...room, stored, last: stored.at(-1).seq };
}

/** Waits until the replay up to `last` is in, and returns the replayed seqs. */
async function replayed(client, last) {
  await client.waitFor((f) => f.seq === last);
  return seqs(client.events());
}

test('welcome carries the log epoch, fixed for the life of the log, and recovered', async () => {
  const { created, sid, bob, last } = await sessionWithEvents('epoch');
  const first = await join(sid, created.token, { since: '0' });
  assert.match(first.welcome.epoch, /^[A-Za-z0-9_-]{1,64}$/);
  assert.equal(first.welcome.recovered, true);
  assert.equal(first.welcome.replay_from, 1);
  assert.deepEqual(await replayed(first.client, last), range(1, last));
  // Another participant, later: the same epoch.
  const other = await join(sid, (await mintToken(ctx.server, bob, sid)).token);
  assert.equal(other.welcome.epoch, first.welcome.epoch);
  assert.equal(other.welcome.recovered, true, 'no since: nothing to recover, nothing to reset');
  assert.equal(other.welcome.replay_from, last + 1);
  // With its epoch and a since inside the log: exactly what came after.
  const resumed = await join(sid, created.token, { since: '2', epoch: first.welcome.epoch });
  assert.equal(resumed.welcome.recovered, true);
  assert.equal(resumed.welcome.replay_from, 3);
  assert.deepEqual(await replayed(resumed.client, last), range(3, last));
});

test('a since beyond the last seq, or another epoch, replays from the beginning with recovered false', async () => {
  const { created, sid, last } = await sessionWithEvents('reset');
  const beyond = await join(sid, created.token, { since: String(last + 50) });
  assert.equal(beyond.welcome.recovered, false);
  assert.equal(beyond.welcome.replay_from, 1);
  assert.deepEqual(await replayed(beyond.client, last), range(1, last));
  const foreign = await join(sid, created.token, { since: '2', epoch: 'ep_another_log' });
  assert.equal(foreign.welcome.recovered, false);
  assert.equal(foreign.welcome.replay_from, 1);
  assert.deepEqual(await replayed(foreign.client, last), range(1, last));
  // The live stream goes on after the replay, for the reset client too.
  const client_request_id = rid();
  foreign.client.send({ type: 'prompt', content: 'after', client_request_id });
  await foreign.client.waitFor((f) => f.type === 'message' && f.client_request_id === client_request_id);
  assert.deepEqual(seqs(foreign.client.events()), range(1, last + 1));
});

test('an epoch that cannot be one is refused before the socket opens', async () => {
  const { created, sid } = await roomOfTwo(ctx.server, 'bad epoch');
  const attempt = await Client.attempt(url(sid, created.token, { since: '0', epoch: 'not an <epoch>' }));
  assert.equal(attempt.opened, false);
  assert.equal(attempt.status, 422);
});

// Kept last: it restarts the server.
test('the epoch survives a restart of the room', { timeout: 90_000 }, async () => {
  const { created, sid, alice, last } = await sessionWithEvents('restart');
  const before = await join(sid, created.token, { since: String(last) });
  await ctx.clients.closeAll();
  await ctx.server.restart();
  const token = (await mintToken(ctx.server, alice, sid)).token;
  const after = await join(sid, token, { since: String(last), epoch: before.welcome.epoch });
  assert.equal(after.welcome.epoch, before.welcome.epoch);
  assert.equal(after.welcome.recovered, true);
  assert.equal(after.welcome.replay_from, last + 1);
});
