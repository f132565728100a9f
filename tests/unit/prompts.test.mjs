// The page's prompt state (public/js/state/prompts.js): statuses and the queue from events in
// any order, and the outbox of prompts not confirmed yet.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Outbox, PromptQueue } from '../../public/js/state/prompts.js';

const alice = { id: 'par_a', name: 'Alice' };
const message = (id, seq, content = `prompt ${id}`) => ({ seq, type: 'message', message_id: id, content, author: alice });
const started = (id, seq) => ({ seq, type: 'prompt_started', message_id: id });
const finished = (id, seq, status = 'completed') => ({ seq, type: 'prompt_finished', message_id: id, status });
const shape = (queue) => queue.view().items.map((i) => [i.message_id, i.status, i.position]);

test('live events move prompts through the queue', () => {
  const queue = new PromptQueue();
  assert.equal(queue.apply(message('m1', 1)), true);
  assert.equal(queue.apply(message('m2', 2)), true);
  assert.deepEqual(shape(queue), [['m1', 'queued', 1], ['m2', 'queued', 2]]);
  assert.equal(queue.view().running, false);
  assert.equal(queue.apply(started('m1', 3)), true);
  assert.deepEqual(shape(queue), [['m1', 'running', null], ['m2', 'queued', 1]]);
  assert.equal(queue.view().running, true);
  assert.equal(queue.statusOf('m1'), 'running');
  assert.equal(queue.apply(finished('m1', 4)), true);
  assert.equal(queue.apply(finished('m2', 5, 'cancelled')), true);
  assert.deepEqual(shape(queue), []);
  assert.equal(queue.statusOf('m1'), 'completed');
  assert.equal(queue.statusOf('m2'), 'cancelled');
  // Events that do not touch the queue say so.
  assert.equal(queue.apply({ seq: 6, type: 'token', message_id: 'm1', delta: 'x' }), false);
  assert.equal(queue.apply({ seq: 7, type: 'sandbox_status', status: 'ready' }), false);
  assert.equal(queue.apply(null), false);
});

test('history pages bring older events after newer ones; a finished prompt is not queued again', () => {
  const queue = new PromptQueue();
  // The newer page first: m1 finished, m2 started.
  queue.apply(finished('m1', 10, 'failed'));
  queue.apply(started('m2', 11));
  // Then the older page with both messages and m1's start.
  queue.apply(message('m1', 3));
  queue.apply(started('m1', 4));
  queue.apply(message('m2', 5));
  assert.equal(queue.statusOf('m1'), 'failed', 'a later start does not undo the finish');
  assert.equal(queue.statusOf('m2'), 'running');
  assert.deepEqual(shape(queue), [], 'neither is waiting: the session state seeds the queue');
});

test('the queue is seeded from the session state and kept by later events', () => {
  const queue = new PromptQueue();
  queue.seed([
    { message_id: 'm1', status: 'running', author: alice, content: 'one' },
    { message_id: 'm2', status: 'queued', author: alice, content: 'two' },
    { status: 'queued' }, // no id: skipped
  ]);
  assert.deepEqual(shape(queue), [['m1', 'running', null], ['m2', 'queued', 1]]);
  // The replay after connecting repeats m2's message: nothing changes.
  assert.equal(queue.apply(message('m2', 2, 'two')), false);
  assert.equal(queue.statusOf('m1'), 'running');
  queue.apply(finished('m1', 3));
  queue.apply(started('m2', 4));
  assert.deepEqual(shape(queue), [['m2', 'running', null]]);
  queue.clear();
  assert.deepEqual(shape(queue), []);
  assert.equal(queue.statusOf('m2'), 'running', 'clearing the queue keeps what is known of statuses');
});

test('the outbox keeps sent prompts until confirmed or refused', () => {
  const outbox = new Outbox();
  const one = outbox.add({ type: 'prompt', content: 'one', client_request_id: 'web-1' });
  outbox.add({ type: 'prompt', content: 'two', client_request_id: 'web-2', selection_ids: ['art_1'] });
  outbox.add({ type: 'prompt', content: 'three', client_request_id: 'web-3' });
  assert.equal(one.content, 'one');
  assert.deepEqual(outbox.pending().map((f) => f.content), ['one', 'two', 'three'], 'resent in order after a reconnect');
  assert.equal(outbox.settle('web-1'), true, 'its prompt_ack');
  assert.equal(outbox.settle('web-1'), false, 'then its message event: already settled');
  assert.equal(outbox.settle(undefined), false, 'a message from elsewhere has no request id of ours');
  const refused = outbox.refuse('web-2');
  assert.deepEqual(refused, { type: 'prompt', content: 'two', client_request_id: 'web-2', selection_ids: ['art_1'] });
  assert.equal(outbox.refuse('web-2'), null);
  assert.equal(outbox.refuse('web-unknown'), null);
  assert.equal(outbox.size, 1);
  outbox.clear();
  assert.deepEqual(outbox.pending(), []);
});
