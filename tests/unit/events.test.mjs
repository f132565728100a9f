// The seq reducer of the web page (public/js/state/events.js), without a browser: every seq is
// shown once whether it comes from the replay, live, history pages or the HTTP tail.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventLog } from '../../public/js/state/events.js';

const ev = (seq, type = 'message') => ({ seq, type, ts: '2026-01-01T00:00:00Z' });
const seqs = (events) => events.map((e) => e.seq);
const range = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

/** Feeds live events and returns the verdicts. */
function live(log, ...seqList) {
  return seqList.map((seq) => log.live(ev(seq)));
}

test('a first visit starts one page before the end; a reload resumes after its stored seq', () => {
  const check = (lastSeq, stored, since, floor) => {
    const log = new EventLog({ page: 100 });
    log.open(lastSeq, stored);
    assert.equal(log.since, since, `since for last_seq=${lastSeq} stored=${stored}`);
    assert.equal(log.floor, floor);
  };
  check(0, null, 0, 1);
  check(40, null, 0, 1); // a short session replays from the start
  check(250, null, 150, 151);
  check(250, 200, 200, 201); // a reload: only what came after
  check(250, 250, 250, 251);
  check(250, 300, 150, 151); // stored seq beyond the session (its storage was reset): ignored
  check(undefined, null, 0, 1);
});

test('live events in order advance since; duplicates are dropped and gaps detected', () => {
  const log = new EventLog();
  log.open(0);
  assert.deepEqual(live(log, 1, 2, 3), ['new', 'new', 'new']);
  assert.equal(log.since, 3);
  assert.deepEqual(live(log, 3, 2, 1), ['duplicate', 'duplicate', 'duplicate']);
  assert.deepEqual(live(log, 5), ['gap'], 'seq 4 is missing');
  assert.equal(log.since, 3, 'a gap does not move since: reconnecting asks for 4 on');
  assert.deepEqual(live(log, 4, 5), ['new', 'new']);
  assert.equal(log.since, 5);
  assert.equal(log.size, 5);
  for (const bad of [{}, { seq: 0 }, { seq: -1 }, { seq: 1.5 }, { seq: '6' }, null]) {
    assert.equal(log.live(bad), 'invalid');
  }
  assert.equal(log.since, 5);
});

test('a reconnect asks since the last seq received, and its replay shows only what was missed', () => {
  const log = new EventLog();
  log.open(0);
  live(log, 1, 2, 3, 4);
  // The socket drops; the new one connects with since=4 and the room replays 5 and 6 (and,
  // were it ever to repeat one, it would be dropped).
  assert.equal(log.since, 4);
  assert.deepEqual(log.welcome(6), { reset: false, restart: false, loadEarlier: false });
  assert.deepEqual(live(log, 4, 5, 6, 7), ['duplicate', 'new', 'new', 'new']);
  assert.equal(log.since, 7);
});

test('history pages fill below, a page at a time, down to seq 1', () => {
  const log = new EventLog({ page: 10 });
  log.open(25); // starts after 15
  assert.deepEqual(live(log, 16, 17, 18), ['new', 'new', 'new']);
  const first = log.requestBelow();
  assert.deepEqual(first, { before_seq: 16, limit: 10 });
  assert.equal(log.requestBelow(), null, 'one request at a time');
  // The page may come in any order and overlap what is shown.
  const page = [...range(6, 15), 16].reverse().map((s) => ev(s));
  assert.deepEqual(seqs(log.history(page)), range(6, 15), 'only the new ones, oldest first');
  assert.equal(log.floor, 6);
  assert.deepEqual(log.requestBelow(), { before_seq: 6, limit: 5 }, 'the last page asks only for what is left');
  assert.deepEqual(seqs(log.history(range(1, 5).map((s) => ev(s)))), range(1, 5));
  assert.equal(log.moreBelow, false);
  assert.equal(log.requestBelow(), null, 'nothing is missing below');
  assert.equal(log.size, 18);
  // Live events keep coming on top, and a stale history answer changes nothing.
  assert.deepEqual(live(log, 19), ['new']);
  assert.deepEqual(log.history(range(1, 10).map((s) => ev(s))), []);
});

test('an empty history page means nothing is below; a failed request may be asked again', () => {
  const log = new EventLog({ page: 10 });
  log.open(30);
  assert.ok(log.requestBelow());
  log.historyFailed();
  assert.deepEqual(log.requestBelow(), { before_seq: 21, limit: 10 });
  assert.deepEqual(log.history([]), []);
  assert.equal(log.moreBelow, false);
  assert.equal(log.requestBelow(), null);
});

test('a welcome forgets a history request the old socket did not answer', () => {
  const log = new EventLog({ page: 10 });
  log.open(30);
  assert.ok(log.requestBelow());
  assert.equal(log.requestBelow(), null);
  log.welcome(30);
  assert.deepEqual(log.requestBelow(), { before_seq: 21, limit: 10 });
});

test('a welcome after a reload with little coming asks for a page below to fill the screen', () => {
  const log = new EventLog({ page: 100 });
  log.open(500, 495);
  assert.deepEqual(log.welcome(500), { reset: false, restart: false, loadEarlier: true });
  const fresh = new EventLog({ page: 100 });
  fresh.open(500);
  assert.deepEqual(fresh.welcome(500), { reset: false, restart: false, loadEarlier: false }, 'a full page is coming');
  const short = new EventLog({ page: 100 });
  short.open(30);
  assert.deepEqual(short.welcome(30), { reset: false, restart: false, loadEarlier: false }, 'everything from seq 1 is coming');
});

test('a session with fewer events than the page holds resets the page', () => {
  const log = new EventLog({ page: 10 });
  log.open(0);
  live(log, ...range(1, 40));
  assert.deepEqual(log.welcome(25), { reset: false, restart: true, loadEarlier: false });
  assert.equal(log.since, 15, 'starts again one page before the new end');
  assert.equal(log.size, 0, 'holds nothing');
  assert.deepEqual(live(log, 16, 17), ['new', 'new'], 'seqs shown before the reset come again');
  assert.deepEqual(log.requestBelow(), { before_seq: 16, limit: 10 });
});

test('the HTTP tail of an archived session shows each event once and moves since', () => {
  const log = new EventLog({ page: 10 });
  log.open(30, 20);
  assert.deepEqual(seqs(log.tail(range(21, 25).map((s) => ev(s)))), range(21, 25));
  assert.equal(log.since, 25);
  assert.deepEqual(seqs(log.tail(range(24, 30).map((s) => ev(s)))), range(26, 30));
  assert.equal(log.since, 30);
  assert.deepEqual(log.tail([]), []);
  assert.deepEqual(seqs(log.history(range(11, 20).map((s) => ev(s)))), range(11, 20));
  assert.equal(log.floor, 11);
});

const welcomeOf = (last_seq, epoch, { recovered = true, replay_from } = {}) => ({
  type: 'welcome',
  last_seq,
  epoch,
  recovered,
  replay_from: replay_from ?? last_seq + 1,
});

test('a welcome of the same log continues; one of another log or not recovered starts over at replay_from', () => {
  const log = new EventLog({ page: 100 });
  log.open(10, 10, 'ep_a');
  assert.equal(log.epoch, 'ep_a');
  // The same log, replaying right after what the page holds: nothing to reset.
  assert.deepEqual(log.welcome(welcomeOf(12, 'ep_a', { replay_from: 11 })), { reset: false, restart: false, loadEarlier: true });
  assert.deepEqual(live(log, 11, 12), ['new', 'new']);
  // The room says it could not continue (since beyond its log): start over from its replay.
  const reset = log.welcome(welcomeOf(3, 'ep_b', { recovered: false, replay_from: 1 }));
  assert.deepEqual(reset, { reset: true, restart: false, loadEarlier: false });
  assert.equal(log.epoch, 'ep_b');
  assert.equal(log.size, 0);
  assert.deepEqual(live(log, 1, 2, 3), ['new', 'new', 'new'], 'seqs of the new log are not taken for duplicates');
  // Another epoch even with recovered (a room that kept the seq numbers): start over too.
  assert.equal(log.welcome(welcomeOf(3, 'ep_c', { replay_from: 4 })).reset, true);
  assert.equal(log.since, 3);
});

test('a replay that starts beyond what the page holds (only its newest MiB) starts the page over there and fills below', () => {
  const log = new EventLog({ page: 100 });
  log.open(5000, 10, 'ep_a');
  const { reset, loadEarlier } = log.welcome(welcomeOf(5000, 'ep_a', { replay_from: 4001 }));
  assert.ok(reset);
  assert.ok(loadEarlier);
  assert.equal(log.since, 4000);
  assert.deepEqual(live(log, 4001, 4002), ['new', 'new']);
  assert.deepEqual(log.requestBelow(), { before_seq: 4001, limit: 100 });
});

test('a stored seq without its epoch, or a welcome without one, keeps the older rules', () => {
  const log = new EventLog({ page: 100 });
  log.open(10, 10);
  assert.equal(log.epoch, null);
  assert.equal(log.welcome(welcomeOf(10, 'ep_a')).reset, false);
  assert.equal(log.epoch, 'ep_a');
  const old = new EventLog({ page: 100 });
  old.open(10, 10, 'ep_a');
  assert.deepEqual(old.welcome({ type: 'welcome', last_seq: 5 }), { reset: false, restart: true, loadEarlier: false });
});
