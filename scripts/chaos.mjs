// `npm run chaos -- --cycles N [--seed S] [--participants P]`: kills workerd with SIGKILL N times
// while participants prompt and the dev agent streams, starts it again on the same state, and
// checks the session's log after every cycle (tests/support/chaos.mjs says what is checked).
// Prints the figures (the bytes of answer text lost among them) and exits 1 when a check fails.

import { parseArgs } from 'node:util';
import { runChaos } from '../tests/support/chaos.mjs';

const { values: args } = parseArgs({
  options: {
    cycles: { type: 'string', default: '20' },
    seed: { type: 'string' },
    participants: { type: 'string', default: '3' },
  },
});
const log = (text) => process.stderr.write(`chaos: ${text}\n`);

const result = await runChaos({
  cycles: Number(args.cycles),
  seed: args.seed === undefined ? undefined : Number(args.seed),
  participants: Number(args.participants),
  log,
});
const lossy = result.textLoss.filter((t) => t.lost !== 0);
const lines = [
  `chaos: ${result.cycles} SIGKILLs of workerd in ${result.seconds.toFixed(0)} s (seed ${result.seed})`,
  `prompts: ${result.sent} sent, ${result.acked} acknowledged, ${result.prompts} in the log, ${result.finished} finished (${Object.entries(result.statuses).map(([s, n]) => `${n} ${s}`).join(', ')}), ${result.refused.length} refused`,
  `answer text: ${result.completed} completed prompts, ${lossy.length} with text missing, ${result.lostBytes} bytes lost in all${lossy.length ? ` (per prompt: ${lossy.map((t) => `${t.message_id} ${t.lost}/${t.expected}`).join(', ')})` : ''}`,
  `log checks (seq without gap, acknowledged prompts exactly once, every prompt finished exactly once): ${result.problems.length ? result.problems.join('; ') : 'all held'}`,
];
console.log(lines.join('\n'));
const failed = result.problems.length > 0 || result.perCycle.some((c) => c.problems.length > 0) || lossy.length > 0;
console.log(failed ? '0 passed, 1 failed' : '1 passed, 0 failed');
process.exit(failed ? 1 : 0);
