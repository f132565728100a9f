// Who is here and who is typing (public/js/state/presence.js), from full frames and deltas,
// with the time passed in: no clock, no browser.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Presence, TYPING_SHOWN_MS, typingSentence } from '../../public/js/state/presence.js';

const alice = { id: 'par_a', user_id: 'usr_a', name: 'Alice' };
const bob = { id: 'par_b', user_id: 'usr_b', name: 'Bob' };
const carol = { id: 'par_c', user_id: 'usr_c', name: 'Carol' };
const delta = (change, participant, extra = {}) => ({ type: 'presence_delta', change, participant, ...extra });

/** [name, mine, typing] for each online participant, and the typing sentence, at `now`. */
function seen(presence, now) {
  const { online, typingText } = presence.view(now);
  return { online: online.map((p) => [p.name, p.mine, p.typing]), typingText };
}

test('a joiner gets welcome (online, typing) and a full presence; then deltas change it', () => {
  const p = new Presence();
  assert.equal(p.apply({ type: 'welcome', participant: alice, online: [alice, bob], typing: [bob], last_seq: 3 }, 0), true);
  assert.deepEqual(seen(p, 0), { online: [['Alice', true, false], ['Bob', false, true]], typingText: 'Bob is typing…' });
  p.apply({ type: 'presence', online: [alice, bob], typing: [bob] }, 10);
  p.apply(delta('joined', carol), 100);
  p.apply(delta('typing', carol, { expires_in_ms: 6000 }), 200);
  assert.deepEqual(seen(p, 300), {
    online: [['Alice', true, false], ['Bob', false, true], ['Carol', false, true]],
    typingText: 'Bob and Carol are typing…',
  });
  p.apply(delta('idle', bob), 400); // Bob sent his prompt
  assert.equal(seen(p, 500).typingText, 'Carol is typing…');
  p.apply(delta('left', carol), 600);
  assert.deepEqual(seen(p, 700), { online: [['Alice', true, false], ['Bob', false, false]], typingText: '' });
});

test('typing runs out on the page clock after expires_in_ms; a later typing renews it', () => {
  const p = new Presence();
  p.apply({ type: 'welcome', participant: alice, online: [alice, bob] }, 0);
  p.apply(delta('typing', bob, { expires_in_ms: 6000 }), 1000);
  assert.equal(p.nextExpiry(1000), 6000);
  assert.equal(seen(p, 6999).typingText, 'Bob is typing…');
  p.apply(delta('typing', bob, { expires_in_ms: 6000 }), 5000); // renewed
  assert.equal(seen(p, 10_999).typingText, 'Bob is typing…');
  assert.equal(p.nextExpiry(10_999), 1);
  assert.equal(seen(p, 11_000).typingText, '', 'gone at 5000 + 6000');
  assert.equal(p.nextExpiry(11_000), null, 'nothing left to run out');
  assert.deepEqual(seen(p, 11_000).online, [['Alice', true, false], ['Bob', false, false]], 'still online');
});

test('typing without expires_in_ms, or with a bad one, shows for the default span', () => {
  const p = new Presence();
  p.apply({ type: 'welcome', participant: alice, online: [alice, bob] }, 0);
  for (const extra of [{}, { expires_in_ms: -5 }, { expires_in_ms: 'soon' }, { expires_in_ms: Infinity }]) {
    p.apply(delta('typing', bob, extra), 0);
    assert.equal(p.nextExpiry(0), TYPING_SHOWN_MS, JSON.stringify(extra));
  }
  p.apply(delta('typing', bob, { expires_in_ms: 10 * 60_000 }), 0);
  assert.equal(p.nextExpiry(0), 60_000, 'capped at a minute');
});

test('a full presence frame replaces the view at any time (servers that send only those)', () => {
  const p = new Presence();
  p.apply({ type: 'welcome', participant: alice, online: [alice] }, 0);
  p.apply(delta('joined', bob), 1);
  p.apply(delta('typing', bob), 2);
  p.apply({ type: 'presence', online: [alice, carol], typing: [carol] }, 100);
  assert.deepEqual(seen(p, 100), { online: [['Alice', true, false], ['Carol', false, true]], typingText: 'Carol is typing…' });
  // An older server sends no typing list in welcome and no delta when typing stops: a full
  // frame's typing shows for the default span.
  assert.equal(seen(p, 100 + TYPING_SHOWN_MS).typingText, '');
  p.apply({ type: 'presence', online: [alice, carol], typing: [] }, 200);
  assert.equal(seen(p, 200).typingText, '');
});

test('nobody sees their own typing; names are deduplicated; bad frames change nothing', () => {
  const p = new Presence();
  p.apply({ type: 'welcome', participant: alice, online: [alice, bob, bob, { name: 'no id' }, null], typing: [alice] }, 0);
  assert.deepEqual(seen(p, 0), { online: [['Alice', true, false], ['Bob', false, false]], typingText: '' });
  const before = JSON.stringify(seen(p, 1));
  p.apply(delta('typing', { name: 'no id' }), 1);
  p.apply(delta('joined', null), 1);
  p.apply(delta('waved', bob), 1);
  assert.equal(JSON.stringify(seen(p, 1)), before);
  assert.equal(p.apply({ type: 'pong' }, 1), false, 'not a presence frame');
  // Another tab of Bob's typing under the same name shows once.
  p.apply(delta('typing', bob), 2);
  p.apply(delta('typing', { ...carol, name: 'Bob' }), 2);
  assert.equal(seen(p, 2).typingText, 'Bob is typing…');
  p.apply(delta('joined', { id: 'par_x' }), 3);
  assert.equal(p.view(3).online.at(-1).name, 'Someone', 'a participant without a name');
});

test('the typing sentence', () => {
  assert.equal(typingSentence([]), '');
  assert.equal(typingSentence(['Bob']), 'Bob is typing…');
  assert.equal(typingSentence(['Bob', 'Carol']), 'Bob and Carol are typing…');
  assert.equal(typingSentence(['Bob', 'Carol', 'Dan']), 'Bob, Carol and Dan are typing…');
});

test('a presence_delta frame carries the changes of a batch, in order', () => {
  const p = new Presence();
  p.apply({ type: 'welcome', participant: alice, online: [alice], typing: [], last_seq: 0 }, 0);
  p.apply({
    type: 'presence_delta',
    changes: [
      { change: 'joined', participant: bob },
      { change: 'joined', participant: carol },
      { change: 'typing', participant: bob, expires_in_ms: 6000 },
      { change: 'left', participant: carol },
    ],
  }, 100);
  assert.deepEqual(seen(p, 200), { online: [['Alice', true, false], ['Bob', false, true]], typingText: 'Bob is typing…' });
  // The joiner's own join in a batch changes nothing.
  p.apply({ type: 'presence_delta', changes: [{ change: 'joined', participant: alice }] }, 300);
  assert.equal(seen(p, 300).online.length, 2);
});
