// The session's branch and pull request on the web page (public/js/state/github.js), without
// a browser: seeded from GET /v1/sessions/:id, kept current by artifact events in any order,
// the "Create pull request" request, and the timeline's words for each event.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SessionGit, changeSummary, describeGitEvent, shortCommit } from '../../public/js/state/github.js';

const COMMIT = 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678';
const branchData = (commit = COMMIT, files = 1) => ({ name: 'agent/ses_1', commit, files_changed: files, additions: 3, deletions: 1 });
const prData = (state = 'open', extra = {}) => ({
  number: 7, url: 'https://github.com/acme/demo/pull/7', state, head: 'agent/ses_1', base: 'main',
  opened_by: { user_id: 'usr_b', name: 'Bob', github_login: 'bob' }, ...extra,
});
const event = (seq, type, artifact) => ({ seq, type, ts: '2026-01-01T00:00:00Z', artifact });
const branch = (data, id = 'art_branch') => ({ id, type: 'branch', data });
const pr = (data, id = 'art_pr') => ({ id, type: 'pr', data });

test('before any push there is nothing to propose, and the view says why', () => {
  const git = new SessionGit();
  const view = git.view();
  assert.equal(view.branch, null);
  assert.equal(view.pullRequest, null);
  assert.equal(view.canCreate, false);
  assert.match(view.hint, /Nothing pushed yet/);
  assert.equal(git.apply(event(1, 'message', null)), false);
  assert.equal(git.apply(event(2, 'artifact_created', { id: 'art_s', type: 'dom_selection', data: {} })), false, 'a selection is not git');
});

test('seeded from the session, then the newest seq wins however events arrive', () => {
  const git = new SessionGit();
  assert.equal(git.seed({ branch: { ...branch(branchData()), seq: 20 }, pull_request: null }), true);
  assert.equal(git.view().branch.commit, 'a1b2c3d');
  // The replay brings the older events again: they change nothing.
  assert.equal(git.apply(event(5, 'artifact_created', branch(branchData('0'.repeat(40))))), false);
  assert.equal(git.apply(event(20, 'artifact_updated', branch(branchData()))), false);
  // A later push updates the branch in place.
  assert.equal(git.apply(event(31, 'artifact_updated', branch(branchData('f'.repeat(40), 2)))), true);
  assert.deepEqual(git.view().branch, { name: 'agent/ses_1', url: null, commit: 'fffffff', summary: '2 files changed, +3 \u22121' });
  assert.equal(git.view().canCreate, true);

  git.apply(event(40, 'artifact_created', pr(prData())));
  assert.equal(git.view().pullRequest.stateText, 'open');
  assert.equal(git.view().canCreate, false, 'an open pull request is reused, not made again');
  git.apply(event(45, 'artifact_updated', pr(prData('merged', { merged_at: '2026-01-02T00:00:00Z' }))));
  assert.equal(git.view().pullRequest.state, 'merged');
  assert.equal(git.view().canCreate, true, 'after a merge, later work can have a new one');
  // A history page scrolled up brings the opening event after the merge: still merged.
  assert.equal(git.apply(event(40, 'artifact_created', pr(prData()))), false);
  assert.equal(git.view().pullRequest.state, 'merged');
  // Malformed artifacts are ignored.
  for (const bad of [null, { type: 'pr' }, { id: 'x', type: 'pr' }, { id: 1, type: 'pr', data: {} }]) {
    assert.equal(git.apply(event(99, 'artifact_updated', bad)), false);
  }
});

test('Create pull request: one request at a time; its answer and its event agree; a failure can be tried again', () => {
  const git = new SessionGit();
  git.apply(event(3, 'artifact_created', branch(branchData())));
  assert.equal(git.startCreate(), true);
  assert.equal(git.startCreate(), false, 'not twice at once');
  assert.equal(git.view().createLabel, 'Creating pull request…');
  assert.equal(git.view().canCreate, false);
  git.failed({ code: 'not_configured', message: 'pull requests need GitHub' });
  assert.deepEqual(git.view().error, { code: 'not_configured', message: 'pull requests need GitHub' });
  assert.equal(git.view().canCreate, true);

  assert.equal(git.startCreate(), true);
  assert.equal(git.view().error, null, 'a new try clears the old error');
  assert.equal(git.created({ pull_request: prData(), artifact_id: 'art_pr' }), true);
  assert.equal(git.view().pullRequest.number, '#7');
  assert.equal(git.view().creating, false);
  // Its event comes on the socket too, with a seq: it takes over, and later ones win.
  git.apply(event(8, 'artifact_created', pr(prData())));
  assert.equal(git.pullRequest.seq, 8);
  git.apply(event(9, 'artifact_updated', pr(prData('closed'))));
  assert.equal(git.view().pullRequest.stateText, 'closed');
  // The event first, then the answer: the answer changes nothing.
  const other = new SessionGit();
  other.apply(event(4, 'artifact_created', pr(prData('open'))));
  assert.equal(other.created({ pull_request: prData(), artifact_id: 'art_pr' }), false);
  assert.equal(other.pullRequest.seq, 4);
});

test('the timeline says what each push and pull request event was', () => {
  const check = (ev, text, url = null) => assert.deepEqual(describeGitEvent(ev), { text, url }, text);
  check(event(1, 'artifact_created', branch(branchData())), 'Pushed a1b2c3d to agent/ses_1: 1 file changed, +3 \u22121');
  check(event(2, 'artifact_updated', branch({ ...branchData(), url: 'https://github.com/acme/demo/tree/agent/ses_1' })),
    'Pushed a1b2c3d to agent/ses_1: 1 file changed, +3 \u22121', 'https://github.com/acme/demo/tree/agent/ses_1');
  check(event(3, 'artifact_created', pr(prData())), 'Pull request #7 opened by Bob', 'https://github.com/acme/demo/pull/7');
  check(event(4, 'artifact_updated', pr(prData('open', { head_commit: COMMIT }))), 'Pull request #7 is open, now at a1b2c3d', 'https://github.com/acme/demo/pull/7');
  check(event(5, 'artifact_updated', pr(prData('merged'))), 'Pull request #7 was merged', 'https://github.com/acme/demo/pull/7');
  check(event(6, 'artifact_updated', pr(prData('closed'))), 'Pull request #7 was closed', 'https://github.com/acme/demo/pull/7');
  check(event(7, 'artifact_created', pr({ opened_by: { user_id: 'usr_x', name: null, github_login: null } })), 'Pull request opened by someone');
  assert.equal(describeGitEvent(event(8, 'artifact_created', { id: 'a', type: 'dom_selection', data: {} })), null);
  assert.equal(describeGitEvent(event(9, 'artifact_created', null)), null);
  assert.equal(shortCommit('not a commit'), '');
  assert.equal(changeSummary({}), '0 files changed, +0 \u22120');
});
