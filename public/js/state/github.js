// The session's branch and pull request as the page shows them, and the words for them. No
// DOM here: the session view seeds it from GET /v1/sessions/:id (`branch`, `pull_request`, each
// with the seq of its latest event), feeds it every `artifact_created` and `artifact_updated`
// event, and shows what `view()` says. However events arrive (replay, live, history pages
// while scrolling up), the newest seq wins, so an old event never undoes a newer state.
//
// Artifact data (PROTOCOL.md, "Artifacts of GitHub"): `branch` {name, commit, files_changed,
// additions, deletions, url?}; `pr` {number, url, state, head, base, opened_by{user_id, name,
// github_login}, head_commit?, merged_at?, closed_at?}.

import { PR_STATE_TEXT } from '../messages.js';

const GIT_TYPES = { branch: 'branch', pr: 'pullRequest' };

const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;
const count = (value) => (Number.isInteger(value) && value >= 0 ? value : 0);
const text = (value) => (typeof value === 'string' ? value : '');

/** The first seven characters of a commit id, as git shows it. */
export function shortCommit(commit) {
  return /^[0-9a-f]{7,64}$/i.test(text(commit)) ? commit.slice(0, 7) : '';
}

/** "1 file changed, +1 −0" for a branch's latest push. */
export function changeSummary(data) {
  const files = count(data?.files_changed);
  return `${plural(files, 'file', 'files')} changed, +${count(data?.additions)} \u2212${count(data?.deletions)}`;
}

/** The words for a pull request's state. */
export function pullRequestState(data) {
  const state = text(data?.state);
  return PR_STATE_TEXT[state] ?? (state || 'unknown');
}

/** "#3" for a pull request. */
export function pullRequestNumber(data) {
  return Number.isInteger(data?.number) && data.number > 0 ? `#${data.number}` : '';
}

/** Who opened a pull request, as a name. */
export function openedBy(data) {
  const by = data?.opened_by ?? {};
  return text(by.name) || text(by.github_login) || 'someone';
}

/**
 * The timeline line for an artifact event of a branch or a pull request, or null for other
 * artifacts: `{text, url}` (url: where the line links to).
 */
export function describeGitEvent(event) {
  const artifact = event?.artifact;
  const data = artifact?.data && typeof artifact.data === 'object' ? artifact.data : {};
  const updated = event?.type === 'artifact_updated';
  if (artifact?.type === 'branch') {
    const commit = shortCommit(data.commit);
    return {
      text: `Pushed ${commit ? `${commit} ` : ''}to ${text(data.name) || 'the session branch'}: ${changeSummary(data)}`,
      url: text(data.url) || null,
    };
  }
  if (artifact?.type === 'pr') {
    const name = `Pull request ${pullRequestNumber(data)}`.trim();
    let line;
    if (!updated) line = `${name} opened by ${openedBy(data)}`;
    else if (data.state === 'merged') line = `${name} was merged`;
    else if (data.state === 'closed') line = `${name} was closed`;
    else if (shortCommit(data.head_commit)) line = `${name} is ${pullRequestState(data)}, now at ${shortCommit(data.head_commit)}`;
    else line = `${name} is ${pullRequestState(data)}`;
    return { text: line, url: text(data.url) || null };
  }
  return null;
}

export class SessionGit {
  constructor() {
    this.branch = null; // {id, seq, data}
    this.pullRequest = null; // {id, seq, data}
    this.creating = false;
    this.error = null; // the last failed "Create pull request", {code, message}
  }

  /** The `branch` and `pull_request` of GET /v1/sessions/:id. */
  seed(info) {
    let changed = false;
    for (const artifact of [info?.branch, info?.pull_request]) {
      if (artifact && this.take(artifact, artifact.seq)) changed = true;
    }
    return changed;
  }

  /** An event; true when it changed the branch or the pull request. */
  apply(event) {
    if (event?.type !== 'artifact_created' && event?.type !== 'artifact_updated') return false;
    return this.take(event.artifact, event.seq);
  }

  take(artifact, seq) {
    const slot = GIT_TYPES[artifact?.type];
    if (!slot || typeof artifact.id !== 'string' || !artifact.data || typeof artifact.data !== 'object') return false;
    const at = Number.isInteger(seq) ? seq : 0;
    const current = this[slot];
    // What the server listed last for a type is its artifact with the highest seq; so here.
    if (current && current.seq >= at) return false;
    this[slot] = { id: artifact.id, seq: at, data: artifact.data };
    return true;
  }

  /** A "Create pull request" request may go now (not while one is out). */
  startCreate() {
    if (this.creating) return false;
    this.creating = true;
    this.error = null;
    return true;
  }

  /**
   * The answer of POST /v1/sessions/:id/pull-request, `{pull_request, artifact_id}`. Its event
   * comes on the socket too; whichever is first shows, and the event (with its seq) wins later.
   */
  created(answer) {
    this.creating = false;
    const id = answer?.artifact_id;
    const data = answer?.pull_request;
    if (typeof id !== 'string' || !data || typeof data !== 'object') return false;
    if (this.pullRequest?.id === id) return false;
    this.pullRequest = { id, seq: this.pullRequest?.seq ?? 0, data };
    return true;
  }

  failed(error) {
    this.creating = false;
    this.error = { code: error?.code ?? 'internal', message: error?.message ?? '' };
  }

  /** What the view shows. */
  view() {
    const branch = this.branch?.data ?? null;
    const pr = this.pullRequest?.data ?? null;
    const open = pr?.state === 'open';
    return {
      branch: branch && {
        name: text(branch.name),
        url: text(branch.url) || null,
        commit: shortCommit(branch.commit),
        summary: changeSummary(branch),
      },
      pullRequest: pr && {
        number: pullRequestNumber(pr),
        url: text(pr.url) || null,
        state: text(pr.state),
        stateText: pullRequestState(pr),
        openedBy: openedBy(pr),
        base: text(pr.base),
      },
      // Before the first push there is nothing to propose; an open one is reused, so the
      // button shows only when there is none (or the last one was closed or merged).
      canCreate: !!branch && !open && !this.creating,
      creating: this.creating,
      createLabel: this.creating ? 'Creating pull request…' : 'Create pull request',
      hint: branch ? null : 'Nothing pushed yet: after a prompt that changes files, the agent pushes its work to this session’s branch.',
      error: this.error,
    };
  }
}
