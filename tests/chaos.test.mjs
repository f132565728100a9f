// Chaos, short: workerd killed with SIGKILL three times while participants prompt and the dev
// agent streams through the real local provider and `bridge run`, started again on the same
// state each time; the log is checked after every cycle and at the end (see
// tests/support/chaos.mjs). `npm run chaos -- --cycles N` runs the same for longer.
//
// The answer text of every completed prompt must be whole: the bridge resends what the room
// did not acknowledge, by offset, so a crash loses no byte and repeats none.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runChaos } from './support/chaos.mjs';


test('workerd killed with SIGKILL mid-stream, three times', async (t) => {
  const result = await runChaos({ cycles: 3, log: (line) => t.diagnostic(line) });
  const lossy = result.textLoss.filter((loss) => loss.lost !== 0);
  t.diagnostic(
    `seed ${result.seed}: ${result.acked} prompts acknowledged, ${result.completed} completed, ` +
      `${lossy.length} with answer text missing, ${result.lostBytes} bytes lost`,
  );
  assert.ok(result.acked >= 3, `too few prompts acknowledged to say anything: ${result.acked}`);
  assert.ok(result.completed >= 1, 'no prompt completed');

  await t.test('no gap in seq, every acknowledged prompt exactly once, every prompt finished exactly once', () => {
    assert.deepEqual(result.perCycle.flatMap((check) => check.problems), []);
    assert.deepEqual(result.problems, []);
    assert.equal(result.prompts, result.finished);
  });

  await t.test('the answer text of every completed prompt is whole', () => {
    assert.deepEqual(
      lossy.map(({ message_id, lost }) => `${message_id}: ${lost} bytes`),
      [],
      `${result.lostBytes} bytes of answer text lost over ${result.cycles} crashes`,
    );
  });
});
