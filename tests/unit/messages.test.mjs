// The page's sentences (public/js/messages.js): one for every error code, close code and
// session_error code the coordinator uses.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeClose, describeError, describeSessionError } from '../../public/js/messages.js';

const ERROR_CODES = [
  'invalid_json', 'unknown_type', 'invalid_field', 'too_large', 'rate_limited', 'queue_full',
  'not_found', 'forbidden', 'unauthorized', 'conflict', 'gone', 'method_not_allowed',
  'provider_error', 'not_configured', 'unavailable', 'internal',
];

test('every error code has its own sentence, followed by the coordinator\u2019s words', () => {
  const sentences = new Set();
  for (const code of ERROR_CODES) {
    const alone = describeError({ code, message: '' });
    assert.doesNotMatch(alone, /^Error \(/, `${code} has no sentence`);
    assert.match(alone, /\.$/, `${code}: a sentence ends with a full stop`);
    sentences.add(alone);
    assert.equal(describeError({ code, message: ' the detail ' }), `${alone.replace(/\.$/, '')}: the detail`);
  }
  assert.equal(sentences.size, ERROR_CODES.length, 'no two codes share a sentence');
  assert.equal(describeError({ code: 'brand_new', message: '' }), 'Error (brand_new).');
  assert.equal(describeError({}), describeError({ code: 'internal' }));
  assert.equal(describeError({ code: 'too_large', message: 'content is over 65536 bytes' }), 'Too large to send: content is over 65536 bytes');
});

test('every close code says what happened and whether to reconnect', () => {
  const check = (code, reconnect, text, extra = {}) => {
    const meaning = describeClose(code, '');
    assert.equal(meaning.reconnect, reconnect, `${code} reconnect`);
    assert.match(meaning.text, text, `${code} text`);
    for (const [key, value] of Object.entries(extra)) assert.equal(meaning[key], value, `${code} ${key}`);
  };
  check(1000, true, /closed/);
  check(1001, true, /closed/);
  check(1009, true, /too large/);
  check(1011, true, /error/);
  check(4000, false, /newer connection/);
  check(4001, true, /expired.*new token/, { freshToken: true });
  check(4003, false, /no longer a member/);
  check(4009, false, /archived/, { archived: true });
  check(4010, false, /sandbox.*ended/);
  // The closer's own reason for a normal close, and for codes the page does not know.
  assert.equal(describeClose(1000, 'leaving').text, 'leaving');
  assert.equal(describeClose(1012, 'network went away').text, 'network went away');
  assert.deepEqual(describeClose(1006, ''), { reconnect: true, text: 'The connection dropped.' });
  assert.match(describeClose(4003, 'removed by the owner').text, /no longer a member/, 'a known code keeps its sentence');
});

test('session_error events have sentences for their codes', () => {
  assert.equal(describeSessionError({ code: 'provider_error', message: 'quota exceeded' }), 'The sandbox could not be started or reached: quota exceeded');
  assert.equal(describeSessionError({ code: 'agent_error', message: 'opencode exited' }), 'The agent in the sandbox failed: opencode exited');
  assert.equal(describeSessionError({ code: 'agent_error' }), 'The agent in the sandbox failed.');
  assert.equal(describeSessionError({ code: 'sandbox_failed', message: 'no' }), 'Session error (sandbox_failed): no');
  assert.equal(describeSessionError({ message: 'no' }), 'Session error: no');
});
