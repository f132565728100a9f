// My sessions (cursor paging, each with its latest pull request's state), starting a session
// on a repo, and my own user id to share.

import { api } from '../api.js';
import { h, clear, timeEl } from '../dom.js';
import { describeError } from '../messages.js';
import { pullRequestNumber, pullRequestState } from '../state/github.js';
import { imageNote } from '../state/images.js';
import { copyButton, topBar } from './chrome.js';

export function homeView({ me, onSignOut }) {
  const list = h('ul', { class: 'session-list', 'aria-label': 'Your sessions' });
  const listStatus = h('p', { class: 'muted', role: 'status' }, 'Loading sessions…');
  const more = h('button', { type: 'button', hidden: true }, 'Load more');
  let cursor = null;

  async function loadPage() {
    more.disabled = true;
    try {
      const page = await api.sessions(cursor);
      for (const session of page.sessions ?? []) list.append(sessionItem(session));
      cursor = page.next_cursor ?? null;
      more.hidden = !cursor;
      listStatus.textContent = list.childElementCount ? '' : 'No sessions yet: start one below.';
    } catch (err) {
      listStatus.textContent = describeError(err);
    } finally {
      more.disabled = false;
    }
  }
  more.addEventListener('click', loadPage);

  const root = h('div', { class: 'page' },
    topBar({ me, onSignOut }),
    h('div', { class: 'home' },
      h('section', { class: 'card', 'aria-labelledby': 'sessions-title' },
        h('h1', { id: 'sessions-title' }, 'Your sessions'),
        listStatus, list, more),
      newSessionForm(),
      h('section', { class: 'card', 'aria-labelledby': 'me-title' },
        h('h2', { id: 'me-title' }, 'Your user id'),
        h('p', { class: 'muted' }, 'Give it to a session’s owner so they can add you.'),
        h('p', { class: 'user-id' }, h('code', { id: 'my-user-id' }, me.id), ' ', copyButton(me.id, 'Copy user id')))));
  loadPage();
  return root;
}

/** The chip of a session's latest pull request (`pull_request` in GET /v1/sessions), if any. */
function pullRequestChip(pr) {
  if (!pr || typeof pr !== 'object') return null;
  const state = String(pr.state ?? '').replace(/[^a-z]/g, '');
  return h('span', { class: `chip pr-state pr-${state}`, title: `Pull request ${pullRequestNumber(pr)} is ${pullRequestState(pr)}` },
    `PR ${pullRequestNumber(pr)} ${pullRequestState(pr)}`);
}

function sessionItem(session) {
  const archived = session.status === 'archived';
  return h('li', { dataset: { sessionId: String(session.id ?? '') } },
    h('a', { href: `#/s/${encodeURIComponent(session.id)}`, class: 'session-link' },
      h('span', { class: 'session-title' }, session.title || session.repo || session.id),
      h('span', { class: 'muted' }, ` ${session.repo ?? ''}${session.branch ? ` · ${session.branch}` : ''}`),
      archived ? h('span', { class: 'chip' }, 'archived') : null,
      pullRequestChip(session.pull_request),
      ' ', timeEl(session.created_at)));
}

function newSessionForm() {
  const repo = h('select', { id: 'new-repo', required: true }, h('option', { value: '' }, 'Loading repositories…'));
  const repoHelp = h('p', { id: 'new-repo-help', class: 'muted' });
  // The repository's newest image build, a failure included (state/images.js).
  const imageHelp = h('p', { id: 'new-repo-image', class: 'muted' });
  repo.setAttribute('aria-describedby', 'new-repo-help new-repo-image');
  const branch = h('input', { id: 'new-branch', type: 'text', autocomplete: 'off', placeholder: 'default branch' });
  const title = h('input', { id: 'new-title', type: 'text', maxlength: '200', autocomplete: 'off' });
  const prompt = h('textarea', { id: 'new-prompt', rows: 3 });
  const status = h('p', { class: 'form-status', role: 'alert' });
  const button = h('button', { type: 'submit', class: 'primary' }, 'Start session');
  const repos = new Map();

  api.repos().then(({ repos: list = [] }) => {
    clear(repo);
    if (!list.length) {
      repo.append(h('option', { value: '' }, 'No repositories in your scope'));
      button.disabled = true;
      return;
    }
    for (const r of list) {
      repos.set(r.name, r);
      repo.append(h('option', { value: r.name }, r.name));
    }
    showRepo();
  }).catch((err) => {
    clear(repo).append(h('option', { value: '' }, 'Cannot load repositories'));
    status.textContent = describeError(err);
  });

  function showRepo() {
    const r = repos.get(repo.value);
    repoHelp.textContent = r ? [r.description, ...(r.hints ?? [])].filter(Boolean).join(' · ') : '';
    const note = imageNote(r?.image);
    imageHelp.textContent = note.text;
    imageHelp.className = note.failed ? 'image-failed' : 'muted';
    branch.placeholder = r?.default_branch ? `${r.default_branch} (default)` : 'default branch';
  }
  repo.addEventListener('change', showRepo);

  const form = h('form', { class: 'card new-session', 'aria-labelledby': 'new-title-h' },
    h('h2', { id: 'new-title-h' }, 'Start a session'),
    h('label', { for: 'new-repo' }, 'Repository'), repo, repoHelp, imageHelp,
    h('div', { class: 'row' },
      h('div', {}, h('label', { for: 'new-title' }, 'Title'), title),
      h('div', {}, h('label', { for: 'new-branch' }, 'Branch (optional)'), branch)),
    h('label', { for: 'new-prompt' }, 'First prompt (optional)'), prompt,
    button, status);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!repo.value) return;
    button.disabled = true;
    status.textContent = 'Starting…';
    const body = { repo: repo.value };
    if (branch.value.trim()) body.branch = branch.value.trim();
    if (title.value.trim()) body.title = title.value.trim();
    if (prompt.value.trim()) body.prompt = prompt.value;
    try {
      const created = await api.createSession(body);
      status.textContent = '';
      location.hash = `#/s/${encodeURIComponent(created.session.id)}`;
    } catch (err) {
      status.textContent = describeError(err);
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

