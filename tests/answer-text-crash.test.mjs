// Answer text across crashes: workerd is killed with SIGKILL twice while the real bridge's
// `dev` agent streams a long answer, and started again on the same state and port. The stored
// answer must be the agent's text exactly: no byte lost, none twice, and the prompt completes.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
import { Client, allEvents, freePort, range, rid, roomOfTwo, sessionWsUrl, sleep, useServer } from './support/server.mjs';
import { startLocalProvider } from './support/sandbox.mjs';

const secret = randomBytes(24).toString('base64url');
let providerPort;
let provider = null;

const ctx = useServer({
  vars: async () => {
    providerPort = await freePort();
    return { PROVIDER: 'local', PROVIDER_URL: `http://127.0.0.1:${providerPort}`, PROVIDER_SECRET: secret };
  },
});

after(async () => {
  await provider?.stop();
});

const N = 2_000;

test('kill -9 of workerd while the agent streams loses no answer text and repeats none', { timeout: 240_000 }, async () => {
  // 100 deltas per second, as a model streams.
  provider = await startLocalProvider({ port: providerPort, secret, env: { HEARTBEAT_SECS: '1', DEV_AGENT_DELAY_MS: '10' } });
  const { alice, created, sid } = await roomOfTwo(ctx.server, 'crash');
  const { client } = await ctx.connect(sid, created.token, 0);
  client.send({ type: 'prompt', content: `long answer\nstream ${N}`, client_request_id: rid() });
  const ack = await client.waitFor((f) => f.type === 'prompt_ack');
  const messageId = ack.message_id;
  const tokensOf = (events) => events.filter((e) => e.type === 'token' && e.message_id === messageId);

  // Crash twice mid-stream, each time once the answer has moved on.
  let seen = 0;
  for (const crash of [1, 2]) {
    const atLeast = crash * 300;
    const deadline = Date.now() + 60_000;
    for (;;) {
      const events = await allEvents(ctx.server, alice, sid);
      const text = tokensOf(events).map((e) => e.delta).join('');
      const numbers = text.split(' ').filter((w) => /^\d+$/.test(w)).length;
      if (numbers >= atLeast) {
        seen = numbers;
        break;
      }
      assert.ok(Date.now() < deadline, `the answer did not reach ${atLeast} numbers (at ${numbers})`);
      await sleep(200);
    }
    await ctx.server.crash();
  }
  assert.ok(seen < N, 'the crashes came while the answer was still streaming');

  // The prompt completes; the answer is whole, each byte once.
  const deadline = Date.now() + 150_000;
  let events;
  for (;;) {
    events = await allEvents(ctx.server, alice, sid);
    if (events.some((e) => e.type === 'prompt_finished' && e.message_id === messageId)) break;
    assert.ok(Date.now() < deadline, 'the prompt did not finish');
    await sleep(500);
  }
  const finished = events.find((e) => e.type === 'prompt_finished' && e.message_id === messageId);
  assert.equal(finished.status, 'completed', JSON.stringify(finished));
  assert.equal(finished.incomplete_text, undefined, JSON.stringify(finished));
  let expected = 'Working on: long answer\n';
  for (let i = 1; i <= N; i++) expected += `${i} `;
  const tokens = tokensOf(events);
  const text = tokens.map((e) => e.delta).join('');
  if (text !== expected) {
    const at = [...text].findIndex((c, i) => c !== expected[i]);
    assert.fail(`the stored answer differs from the agent's at character ${at}: ${text.length} characters stored, ${expected.length} produced; near: ${JSON.stringify(text.slice(Math.max(0, at - 20), at + 40))}`);
  }
  let end = 0;
  for (const token of tokens) {
    assert.equal(token.offset, end, 'each stored delta starts where the one before ended');
    end += Buffer.byteLength(token.delta);
  }
  assert.deepEqual(events.map((e) => e.seq), range(1, events.length), 'no gap in seq');

  // A participant that reconnects sees the same answer.
  const again = ctx.clients.add(await Client.connect(sessionWsUrl(ctx.server, sid, (await ctx.http.post(`/v1/sessions/${sid}/tokens`, { key: alice.key })).json.token, 0)));
  await again.waitFor((f) => f.type === 'prompt_finished' && f.message_id === messageId, 20_000);
  assert.equal(tokensOf(again.events()).map((e) => e.delta).join(''), expected);
  client.close();
});
