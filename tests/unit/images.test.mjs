// The new-session form's sentence about a repository's image (public/js/state/images.js).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { imageNote } from '../../public/js/state/images.js';

const COMMIT = 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678';

test('a failed build is said, with its reason, and marked as a failure', () => {
  const note = imageNote({ status: 'failed', commit: COMMIT, error: 'git clone failed: fatal: bad object', finished_at: '2026-01-01T00:00:00Z' });
  assert.equal(note.failed, true);
  assert.equal(note.text, 'The image build of a1b2c3d failed: git clone failed: fatal: bad object. New sandboxes start from the last image that built, or clone the repository.');
  assert.match(imageNote({ status: 'failed', commit: COMMIT, error: null }).text, /^The image build of a1b2c3d failed\. /);
});

test('ready and building images are said plainly; nothing or nonsense says nothing', () => {
  assert.deepEqual(imageNote({ status: 'ready', commit: COMMIT }), { text: 'New sandboxes start from an image of a1b2c3d.', failed: false });
  assert.deepEqual(imageNote({ status: 'building', commit: COMMIT }), { text: 'An image of a1b2c3d is being built.', failed: false });
  assert.equal(imageNote({ status: 'ready', commit: '<b>x</b>' }).text, 'New sandboxes start from an image.');
  for (const nothing of [null, undefined, 'ready', {}, { status: 'odd' }]) assert.deepEqual(imageNote(nothing), { text: '', failed: false });
});
