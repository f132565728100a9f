// Answer text exactly once (PROTOCOL.md section 3, `token` offsets): what the room stores of
// an answer, what it acknowledges, what it tells a bridge that comes back, and what a prompt
// whose text has a hole finishes with. The test speaks as the bridge through a recording
// provider at the network boundary, so it can send exactly the offsets it wants; the kill -9
// case with the real bridge is in answer-text-crash.test.mjs.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { allEvents, rid, roomOfTwo, sleep, useServer } from './support/server.mjs';
import { dialBridge, nthCreate, startRecordingProvider } from './support/sandbox.mjs';

const secret = randomBytes(24).toString('base64url');
let provider;

const ctx = useServer({
  vars: async () => {
    provider = await startRecordingProvider({ secret });
    return { PROVIDER: 'local', PROVIDER_URL: provider.url, PROVIDER_SECRET: secret };
  },
});

after(() => provider?.stop());

const eventOf = (type, pred = () => true) => (f) => f.type === type && typeof f.seq === 'number' && pred(f);

/** A session with a prompt running on a bridge the test plays: → {alice, client, bridge, messageId, create}. */
async function running(title) {
  const before = provider.creates.length;
  const { alice, created, sid } = await roomOfTwo(ctx.server, title);
  const { client } = await ctx.connect(sid, created.token, 0);
  client.send({ type: 'prompt', content: title, client_request_id: rid() });
  const ack = await client.waitFor((f) => f.type === 'prompt_ack');
  const create = await nthCreate(provider, before + 1);
  const bridge = await bridgeFor(create);
  await bridge.waitFor((f) => f.type === 'prompt' && f.message_id === ack.message_id);
  return { alice, sid, client, bridge, create, messageId: ack.message_id };
}

async function bridgeFor(create, { messageId } = {}) {
  const bridge = ctx.clients.add(await dialBridge(ctx.server, create.session_id, { token: create.sandbox_token, sandboxId: create.sandbox_id }));
  bridge.send({ type: 'ready', sandbox_id: create.sandbox_id, agent: 'test', agent_version: '1', message_id: messageId });
  const timer = setInterval(() => bridge.isOpen && bridge.send({ type: 'heartbeat' }), 1_000);
  bridge.closed.then(() => clearInterval(timer));
  return bridge;
}

const textOf = (events, messageId) =>
  events
    .filter((e) => e.type === 'token' && e.message_id === messageId)
    .map((e) => e.delta)
    .join('');

describe('answer text', () => {
  test('a stream of 3,000 deltas at 100 per second costs at most 3 wire bytes per answer byte', { timeout: 120_000 }, async () => {
    const { alice, sid, client, bridge, messageId } = await running('wire cost');
    const from = client.mark();
    // Word-sized deltas, as models send them (about 8.6 bytes each).
    const words = ['the ', 'quick ', 'brown ', 'fox ', 'jumps ', 'over ', 'lazy ', 'dogs, ', 'again ', 'and again. '];
    let answer = '';
    const n = 3_000;
    const started = Date.now();
    for (let i = 0; i < n; i++) {
      const delta = words[i % words.length];
      bridge.send({ type: 'token', message_id: messageId, delta, offset: Buffer.byteLength(answer) });
      answer += delta;
      // 100 per second, paced against the clock so timer drift does not slow the stream.
      const due = started + (i + 1) * 10;
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait);
    }
    bridge.send({ type: 'done', message_id: messageId, ok: true, text_bytes: Buffer.byteLength(answer), ack_id: 'wire-done' });
    await client.waitFor(eventOf('prompt_finished', (f) => f.message_id === messageId), 30_000, from);
    let wireBytes = 0;
    let nEvents = 0;
    for (let i = from; i < client.frames.length; i++) {
      const frame = client.frames[i];
      if (frame.type === 'token' && frame.message_id === messageId) {
        wireBytes += Buffer.byteLength(client.raw[i]);
        nEvents += 1;
      }
    }
    const answerBytes = Buffer.byteLength(answer);
    const ratio = wireBytes / answerBytes;
    console.log(`wire cost: ${n} deltas, ${answerBytes} answer bytes, ${nEvents} token events, ${wireBytes} wire bytes, ${ratio.toFixed(2)} bytes per answer byte`);
    assert.equal(textOf(await allEvents(ctx.server, alice, sid), messageId), answer, 'the stored text is the answer, once');
    assert.ok(ratio <= 3, `at most 3 wire bytes per answer byte, got ${ratio.toFixed(2)}`);
  });

  test('text already held is stored once: overlapping and repeated deltas keep only what is new', async () => {
    const { alice, sid, client, bridge, messageId } = await running('overlap');
    const send = (delta, offset) => bridge.send({ type: 'token', message_id: messageId, delta, offset });
    send('Hello ', 0);
    send('wörld', 6);
    send('Hello wö', 0); // all held already
    send('wörld, again', 6); // ", again" is new
    send(', again', 12); // held
    bridge.send({ type: 'done', message_id: messageId, ok: true, text_bytes: Buffer.byteLength('Hello wörld, again'), ack_id: 'ov-done' });
    const finished = await client.waitFor(eventOf('prompt_finished', (f) => f.message_id === messageId), 10_000);
    assert.equal(finished.status, 'completed');
    assert.equal(finished.incomplete_text, undefined);
    const events = await allEvents(ctx.server, alice, sid);
    assert.equal(textOf(events, messageId), 'Hello wörld, again');
    // Every stored token event says where its text starts, and the pieces follow each other.
    let end = 0;
    for (const event of events.filter((e) => e.type === 'token' && e.message_id === messageId)) {
      assert.equal(event.offset, end, JSON.stringify(event));
      end += Buffer.byteLength(event.delta);
    }
    // The bridge heard how far the text is stored.
    const acks = bridge.frames.filter((f) => f.type === 'tokens_ack' && f.message_id === messageId);
    assert.ok(acks.length >= 1, 'tokens_ack after stored batches');
    assert.equal(acks.at(-1).offset, Buffer.byteLength('Hello wörld, again'));
  });

  test('a bridge that comes back mid-answer is told where the stored text ends, and what it sends again is stored once', async () => {
    const { alice, sid, client, bridge, create, messageId } = await running('resume');
    bridge.send({ type: 'token', message_id: messageId, delta: 'one two ', offset: 0 });
    await bridge.waitFor((f) => f.type === 'tokens_ack' && f.offset === 8, 5_000);
    await bridge.closeAndWait();
    const again = await bridgeFor(create, { messageId });
    const resume = await again.waitFor((f) => f.type === 'resume', 5_000);
    assert.deepEqual(resume, { type: 'resume', message_id: messageId, offset: 8 });
    assert.ok(!again.frames.some((f) => f.type === 'prompt'), 'the running prompt is not sent again to the bridge working on it');
    // It had not heard the ack: it sends everything again, plus what is new.
    again.send({ type: 'token', message_id: messageId, delta: 'one two three', offset: 0 });
    again.send({ type: 'done', message_id: messageId, ok: true, text_bytes: 13, ack_id: 'rs-done' });
    const finished = await client.waitFor(eventOf('prompt_finished', (f) => f.message_id === messageId), 10_000);
    assert.equal(finished.status, 'completed');
    assert.equal(textOf(await allEvents(ctx.server, alice, sid), messageId), 'one two three');
  });

  test('a prompt whose text has a hole does not finish silently', async () => {
    const { alice, sid, client, bridge, messageId } = await running('hole');
    bridge.send({ type: 'token', message_id: messageId, delta: 'before ', offset: 0 });
    // 10 bytes never arrive.
    bridge.send({ type: 'token', message_id: messageId, delta: 'after', offset: 17 });
    bridge.send({ type: 'done', message_id: messageId, ok: true, text_bytes: 22, ack_id: 'hole-done' });
    const finished = await client.waitFor(eventOf('prompt_finished', (f) => f.message_id === messageId), 10_000);
    assert.equal(finished.incomplete_text, true, JSON.stringify(finished));
    assert.match(finished.error, /10 bytes of the answer were lost/);
    const events = await allEvents(ctx.server, alice, sid);
    assert.equal(textOf(events, messageId), 'before after');
    assert.deepEqual(
      events.filter((e) => e.type === 'token' && e.message_id === messageId).map((e) => e.offset),
      [0, 17],
      'the text after the hole keeps its place',
    );
  });
});
