// A property test of the page's seq reducer (public/js/state/events.js) over random
// sessions: a room with a log, a socket that replays after `since`, drops events, repeats
// them and disconnects, and history pages that come back shuffled. Whatever happens, every
// seq is shown at most once, and once the page has caught up and paged down to the first
// event, every seq of the log is shown exactly once. Seeded, so a failure names its seed.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventLog } from '../../public/js/state/events.js';

/** mulberry32: a small seeded generator. */
function random(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (lo, hi) => Math.floor(lo + (hi - lo + 1) * next()), chance: (p) => next() < p };
}

const event = (seq) => ({ seq, type: 'message' });

function shuffle(rng, list) {
  const out = [...list];
  for (let i = out.length - 1; i > 0; i -= 1) {
    const j = rng.int(0, i);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** One random session; returns the seqs the page showed, in the order it showed them. */
function session(seed) {
  const rng = random(seed);
  const page = rng.int(1, 20);
  const log = new EventLog({ page });
  let last = rng.int(0, 60); // events stored before the page opens
  const stored = rng.chance(0.3) ? rng.int(0, last + 5) : null;
  log.open(last, stored);
  const shown = [];
  const show = (seq) => shown.push(seq);
  let socket = null; // the next seq this socket will deliver, or null when closed

  const connect = () => {
    const welcome = log.welcome(last);
    assert.equal(welcome.restart, false, 'the log never shrinks here');
    socket = log.since + 1;
  };
  connect();
  for (let step = 0; step < 300; step += 1) {
    const roll = rng.next();
    if (roll < 0.3) {
      last += rng.int(1, 3); // the room stores new events
    } else if (roll < 0.6 && socket !== null && socket <= last) {
      // The socket delivers its next event, or loses it (the page then sees a gap), or repeats one.
      if (rng.chance(0.08)) socket += 1;
      const seq = rng.chance(0.08) && socket > 1 ? rng.int(1, socket - 1) : socket++;
      const outcome = log.live(event(seq));
      assert.ok(['new', 'duplicate', 'gap'].includes(outcome), outcome);
      if (outcome === 'new') show(seq);
      if (outcome === 'gap') socket = null; // the page reconnects with since=
    } else if (roll < 0.7) {
      socket = null; // the socket drops
    } else if (roll < 0.85) {
      const request = log.requestBelow();
      if (request) {
        assert.ok(request.limit >= 1 && request.limit <= page && request.before_seq >= 2, JSON.stringify(request));
        if (rng.chance(0.1)) {
          log.historyFailed();
        } else {
          const from = Math.max(1, request.before_seq - request.limit);
          const events = [];
          for (let s = from; s < request.before_seq; s += 1) events.push(event(s));
          for (const e of log.history(shuffle(rng, events))) show(e.seq);
        }
      }
    }
    if (socket === null && rng.chance(0.5)) connect();
    assert.ok(log.since <= last, `since ${log.since} beyond the last seq ${last}`);
  }
  // Catch up: a socket that delivers everything, then history down to seq 1.
  connect();
  while (socket <= last) {
    const outcome = log.live(event(socket));
    if (outcome === 'new') show(socket);
    socket += 1;
  }
  for (let request = log.requestBelow(); request; request = log.requestBelow()) {
    const events = [];
    for (let s = Math.max(1, request.before_seq - request.limit); s < request.before_seq; s += 1) events.push(event(s));
    for (const e of log.history(shuffle(rng, events))) show(e.seq);
  }
  return { shown, last };
}

test('every seq is shown exactly once, whatever the socket and history pages do', () => {
  for (let seed = 1; seed <= 2000; seed += 1) {
    const { shown, last } = session(seed);
    const sorted = [...shown].sort((a, b) => a - b);
    assert.deepEqual(
      sorted,
      Array.from({ length: last }, (_, i) => i + 1),
      `seed ${seed}: shown ${JSON.stringify(shown.slice(0, 40))}…`,
    );
  }
});
