// Signing in on the web page (public/js/state/signin.js and the refusal sentences of
// public/js/messages.js), without a browser.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeSignInRefusal } from '../../public/js/messages.js';
import { githubLoginUrl, returnTo, signInRefusal } from '../../public/js/state/signin.js';

test('a refused sign-in is read from the fragment the coordinator sends the browser to', () => {
  const hash = `#/signin?${new URLSearchParams({ error: 'not_allowed', reason: 'the GitHub account mallory is not allowed here' })}`;
  assert.deepEqual(signInRefusal(hash), { error: 'not_allowed', reason: 'the GitHub account mallory is not allowed here' });
  assert.equal(signInRefusal('#/signin'), null);
  assert.equal(signInRefusal('#/'), null);
  assert.equal(signInRefusal('#/s/ses_1?error=x'), null, 'only the sign-in view carries refusals');
  assert.deepEqual(signInRefusal('#/signin?error=%3Cb%3E&reason='), { error: 'unknown', reason: '' });
  assert.equal(signInRefusal(`#/signin?error=denied&reason=${'x'.repeat(1000)}`).reason.length, 400);
});

test('every refusal code has its own sentence, then the coordinator\u2019s words', () => {
  const codes = ['denied', 'expired', 'state_mismatch', 'exchange_failed', 'not_allowed', 'disabled'];
  const sentences = new Set(codes.map((error) => describeSignInRefusal({ error, reason: '' })));
  assert.equal(sentences.size, codes.length);
  for (const sentence of sentences) assert.match(sentence, /\.$/);
  assert.equal(
    describeSignInRefusal({ error: 'not_allowed', reason: 'the GitHub account mallory is not allowed here' }),
    'This GitHub account may not sign in here. The GitHub account mallory is not allowed here.',
  );
  assert.match(describeSignInRefusal({ error: 'unknown', reason: '' }), /did not succeed/);
});

test('the sign-in link comes back to the view it left, when the coordinator would accept it', () => {
  assert.equal(returnTo('#/s/ses_0123456789abcdef'), '/s/ses_0123456789abcdef');
  assert.equal(returnTo(''), '/');
  assert.equal(returnTo('#/signin?error=expired&reason=x'), '/', 'not back to a refusal');
  assert.equal(returnTo('#//evil.example'), '/');
  assert.equal(returnTo('#/s/<script>'), '/');
  assert.equal(returnTo(`#/s/${'a'.repeat(300)}`), '/');
  assert.equal(githubLoginUrl('#/s/ses_1'), '/v1/auth/github/login?return_to=%2Fs%2Fses_1');
});
