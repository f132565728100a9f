// One session: the live timeline, who is here and typing, the prompt queue, the composer,
// the session's branch and pull request ("Create pull request"), sharing, and the connection
// with its state.
//
// What the page knows lives in the state modules, which hold no DOM: which events are shown
// and what to ask for (state/events.js), prompts and the outbox (state/prompts.js), who is
// here (state/presence.js), the branch and the pull request (state/github.js). This view feeds
// them the frames and shows what they say. Lines are never duplicated or dropped: the socket reconnects with `since=<highest seq received>`, that
// seq is kept in sessionStorage so a reload resumes from it, and the part before it comes from
// `history` frames (or GET /events when there is no socket), a page at a time, as one scrolls up.

import { ApiError, api } from '../api.js';
import { SessionSocket } from '../connection.js';
import { clear, h, preview, safeLink } from '../dom.js';
import { SANDBOX_STATUS_TEXT, describeError } from '../messages.js';
import { EventLog } from '../state/events.js';
import { SessionGit } from '../state/github.js';
import { Presence } from '../state/presence.js';
import { Outbox, PromptQueue } from '../state/prompts.js';
import { Timeline } from '../timeline.js';
import { copyButton, topBar } from './chrome.js';

const TYPING_EVERY_MS = 3_000; // the coordinator shows "typing" for 6 s
const FRAME_LIMIT = 256 * 1024; // a client frame; larger ones are refused before sending
const NEAR_BOTTOM_PX = 80;
const NEAR_TOP_PX = 120;

const lastSeqKey = (sid) => `coordinator.lastSeq.${sid}`;

function storedSeq(sid) {
  try {
    const n = Number(sessionStorage.getItem(lastSeqKey(sid)));
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

function storeSeq(sid, seq, epoch) {
  try {
    sessionStorage.setItem(lastSeqKey(sid), String(seq));
    if (epoch) sessionStorage.setItem(`${lastSeqKey(sid)}.epoch`, epoch);
  } catch {
    // storage full or disabled: a reload then starts from the last page
  }
}

function storedEpoch(sid) {
  try {
    return sessionStorage.getItem(`${lastSeqKey(sid)}.epoch`);
  } catch {
    return null;
  }
}

function requestId() {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return `web-${[...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/** Renders the session view into `main`; returns a function that tears it down. */
export function sessionView(main, { sessionId, me: user, onSignOut, onUnauthorized }) {
  const log = new EventLog();
  const prompts = new PromptQueue();
  const outbox = new Outbox();
  const presence = new Presence();
  const git = new SessionGit();
  const state = {
    role: null,
    readOnly: false,
    attached: new Map(), // artifact id → artifact, for the next prompt
    lastTypingSent: 0,
    socket: null,
    countdown: null,
    presenceTimer: null,
    disposed: false,
  };

  // ----- layout

  const connBadge = h('span', { class: 'conn conn-connecting', role: 'status', 'aria-live': 'polite' }, 'Connecting…');
  const retryButton = h('button', { type: 'button', class: 'small', hidden: true, onclick: () => state.socket?.reconnectNow() }, 'Retry now');
  const sandboxChip = h('span', { class: 'chip sandbox', hidden: true });
  const titleEl = h('h1', { class: 'session-name' }, 'Session');
  const repoEl = h('span', { class: 'muted repo' });
  const prHead = h('span', { class: 'pr-head', hidden: true });

  const list = h('ol', { class: 'timeline', 'aria-label': 'Session timeline' });
  const pendingList = h('ol', { class: 'timeline pending', 'aria-label': 'Prompts being sent' });
  const earlier = h('button', { type: 'button', class: 'earlier', hidden: true, onclick: () => loadEarlier() }, 'Load earlier events');
  const scroller = h('div', { class: 'timeline-scroll', tabindex: '0', 'aria-label': 'Timeline, scroll up for earlier events' },
    earlier, list, pendingList);
  const announcer = h('div', { class: 'sr-only', 'aria-live': 'polite', 'aria-atomic': 'true' });
  const typingLine = h('p', { class: 'typing-line muted', 'aria-live': 'polite' });
  const banner = h('div', { class: 'banner', role: 'alert', hidden: true });

  const textarea = h('textarea', {
    id: 'prompt-input', rows: 2, placeholder: 'Ask the agent… (Enter to send, Shift+Enter for a new line)',
    'aria-describedby': 'composer-help',
  });
  const attachedList = h('ul', { class: 'attached', 'aria-label': 'Attached selections' });
  const sendButton = h('button', { type: 'submit', class: 'primary' }, 'Send');
  const stopButton = h('button', { type: 'button', class: 'danger', disabled: true, title: 'Stop the running prompt', onclick: stopPrompt }, 'Stop');
  const composer = h('form', { class: 'composer', 'aria-label': 'Send a prompt' },
    h('label', { for: 'prompt-input', class: 'sr-only' }, 'Prompt'),
    attachedList, textarea,
    h('div', { class: 'composer-actions' },
      h('span', { id: 'composer-help', class: 'muted hint' }, 'Enter sends · Shift+Enter adds a line'),
      stopButton, sendButton));
  const readOnlyNote = h('p', { class: 'readonly-note', hidden: true });

  const peopleList = h('ul', { class: 'people' });
  const queueList = h('ol', { class: 'queue' });
  const queueEmpty = h('p', { class: 'muted' }, 'Nothing waiting.');
  const queueCount = h('span', { class: 'count' });
  const peopleCount = h('span', { class: 'count' });
  const sharePanel = h('details', { class: 'panel share', hidden: true });
  const gitBody = h('div', { class: 'git-body' });
  const prButton = h('button', { type: 'button', class: 'create-pr', onclick: () => createPullRequest() }, 'Create pull request');
  const prStatus = h('p', { class: 'form-status', role: 'status', 'aria-live': 'polite' });
  const mobile = window.matchMedia('(max-width: 760px)').matches;

  const side = h('aside', { class: 'side', 'aria-label': 'Session details' },
    h('details', { class: 'panel', open: !mobile }, h('summary', {}, 'People ', peopleCount), peopleList),
    h('details', { class: 'panel', open: !mobile }, h('summary', {}, 'Queue ', queueCount), queueEmpty, queueList),
    h('details', { class: 'panel git', open: !mobile }, h('summary', {}, 'Branch and pull request'), gitBody, prButton, prStatus),
    sharePanel);

  main.replaceChildren(h('div', { class: 'page session' },
    topBar({ me: user, onSignOut, children: [h('div', { class: 'session-head' }, titleEl, repoEl, prHead), connBadge, retryButton, sandboxChip] }),
    h('div', { class: 'session-layout' },
      h('section', { class: 'timeline-pane', 'aria-label': 'Timeline and prompt' },
        scroller, typingLine, banner, readOnlyNote, composer),
      side),
    announcer));

  const timeline = new Timeline(list, {
    me: () => presence.me,
    statusOf: (id) => prompts.statusOf(id),
    isAttached: (id) => state.attached.has(id),
    toggleAttach,
    announce,
    // Answers render a frame after their tokens came: stay at the bottom if the reader was there.
    rendering: (render) => keepingBottom(render),
  });

  // ----- small helpers

  function announce(text) {
    announcer.textContent = '';
    // A separate task so the same text twice is still read.
    setTimeout(() => (announcer.textContent = text), 50);
  }

  function showError(text) {
    clear(banner).append(h('span', {}, text), ' ',
      h('button', { type: 'button', class: 'link', onclick: () => (banner.hidden = true) }, 'Dismiss'));
    banner.hidden = false;
  }

  function nearBottom() {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR_BOTTOM_PX;
  }

  /** Runs `change` and keeps the view pinned to the bottom if it was there. */
  function keepingBottom(change) {
    const pinned = nearBottom();
    change();
    if (pinned) scroller.scrollTop = scroller.scrollHeight;
  }

  /** Runs `change` (which adds above) without moving what the reader is looking at. */
  function keepingPlace(change) {
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    change();
    scroller.scrollTop = scroller.scrollHeight - fromBottom;
  }

  // ----- connection state

  function showConnection(s) {
    clearInterval(state.countdown);
    retryButton.hidden = true;
    connBadge.className = `conn conn-${s.kind}`;
    if (s.kind === 'connecting') connBadge.textContent = 'Connecting…';
    else if (s.kind === 'live') connBadge.textContent = 'Live';
    else if (s.kind === 'reconnecting') {
      retryButton.hidden = false;
      const tick = () => {
        const secs = Math.max(0, Math.ceil((s.at - Date.now()) / 1000));
        connBadge.textContent = `Reconnecting in ${secs} s`;
        connBadge.title = s.reason ?? '';
      };
      tick();
      state.countdown = setInterval(tick, 1000);
    } else if (s.kind === 'closed') {
      connBadge.textContent = `Closed: ${s.reason ?? 'disconnected'}`;
      if (s.fatal === 'unauthorized') onUnauthorized();
      else if (s.archived) setReadOnly('This session is archived: you can read it, but not send prompts.');
      else setReadOnly(s.reason ?? 'Disconnected.');
    }
    updateComposer();
  }

  function setReadOnly(why) {
    state.readOnly = true;
    readOnlyNote.textContent = why;
    readOnlyNote.hidden = false;
    composer.hidden = true;
    outbox.clear();
    renderOutbox();
    renderQueue();
    renderPeople();
    renderGit();
  }

  function updateComposer() {
    stopButton.disabled = state.readOnly || !prompts.view().running;
  }

  // ----- frames from the socket

  function onFrame(frame) {
    if (state.disposed) return;
    if (typeof frame.seq === 'number') return onLiveEvent(frame);
    if (presence.apply(frame, Date.now())) renderPeople();
    switch (frame.type) {
      case 'welcome':
        return onWelcome(frame);
      case 'prompt_ack':
        if (outbox.settle(frame.client_request_id)) renderOutbox();
        return;
      case 'history':
        return onHistory(frame.events);
      case 'error':
        return onErrorFrame(frame);
      default:
        return; // presence (handled above), and ephemeral frames this page does not know
    }
  }

  function onWelcome(frame) {
    const { reset, restart, loadEarlier: fill } = log.welcome(frame);
    if (reset) {
      // Another log, or only its newest part is coming: show what this socket replays, and
      // what lies below it as the reader scrolls up.
      timeline.clear();
      prompts.clear();
      renderQueue();
      storeSeq(sessionId, log.highest, log.epoch);
      earlier.hidden = !log.moreBelow;
    }
    if (restart) {
      // The session has fewer events than this page remembers (its storage was reset): start over.
      timeline.clear();
      storeSeq(sessionId, log.highest);
      state.socket.restart('starting over');
      return;
    }
    // Prompts sent while the socket was down go now; the coordinator ignores a
    // client_request_id it has seen, so nothing is queued twice.
    for (const prompt of outbox.pending()) state.socket.send(prompt);
    // When only a few events are coming (a reload resuming from its stored seq), fetch a page
    // of what came before so the screen is not empty; a full replay needs nothing more.
    if (fill) loadEarlier();
  }

  /** Shows events the log says are new, oldest first, and what they change in the queue. */
  function show(events, live) {
    let queueChanged = false;
    let gitChanged = false;
    for (const event of events) {
      // The prompt state first: the timeline shows statuses from it.
      if (prompts.apply(event)) queueChanged = true;
      timeline.add(event, { live });
      if (event.type === 'message' && outbox.settle(event.client_request_id)) renderOutbox();
      if (live && event.type === 'sandbox_status') showSandbox(event.status);
      if (git.apply(event)) gitChanged = true;
    }
    if (queueChanged) renderQueue();
    if (gitChanged) renderGit();
  }

  function onLiveEvent(event) {
    const verdict = log.live(event);
    if (verdict === 'gap') {
      // A gap cannot happen with `since`, but if it ever did, asking again fills it.
      state.socket.restart('filling a gap');
      return;
    }
    if (verdict !== 'new') return;
    storeSeq(sessionId, log.highest, log.epoch);
    keepingBottom(() => show([event], true));
  }

  function onHistory(events) {
    const fresh = log.history(events);
    keepingPlace(() => {
      show(fresh, false);
      timeline.flush(); // measured below, and kept in place now
    });
    earlier.hidden = !log.moreBelow;
    // Fill the screen before waiting for the reader to scroll.
    if (log.moreBelow && scroller.scrollHeight <= scroller.clientHeight + NEAR_TOP_PX) loadEarlier();
  }

  function onErrorFrame(frame) {
    const refused = frame.client_request_id ? outbox.refuse(frame.client_request_id) : null;
    if (refused) {
      renderOutbox();
      // Give the text back so it can be fixed and sent again.
      if (!textarea.value) textarea.value = refused.content;
      for (const id of refused.selection_ids ?? []) {
        const artifact = timeline.artifacts.get(id);
        if (artifact) state.attached.set(id, artifact);
      }
      renderAttached();
    } else {
      // Perhaps the answer to a history request: it may be asked again.
      log.historyFailed();
    }
    showError(describeError(frame));
  }

  // ----- history

  async function loadEarlier() {
    const request = log.requestBelow();
    if (!request) return;
    if (state.socket?.send({ type: 'history', ...request })) return;
    try {
      const since = Math.max(0, request.before_seq - 1 - request.limit);
      const page = await api.events(sessionId, since, request.limit);
      if (!state.disposed) onHistory((page.events ?? []).filter((e) => e.seq < request.before_seq));
    } catch (err) {
      log.historyFailed();
      showError(describeError(err));
    }
  }

  // Scrolling up near the top loads more. Not while pinned to the bottom: when the timeline has
  // only just outgrown the screen, keeping the newest line in view also puts the top near.
  scroller.addEventListener('scroll', () => {
    if (scroller.scrollTop < NEAR_TOP_PX && !nearBottom()) loadEarlier();
  }, { passive: true });

  // ----- queue, people, prompts being sent

  function renderQueue() {
    const { items } = prompts.view();
    clear(queueList);
    for (const item of items) {
      const queued = item.status === 'queued';
      queueList.append(h('li', { dataset: { messageId: item.message_id } },
        h('span', { class: 'chip' }, queued ? `#${item.position}` : 'running'), ' ',
        h('strong', {}, String(item.author?.name ?? 'Someone')), ': ',
        h('span', { class: 'queue-text' }, preview(item.content, 70)),
        queued && !state.readOnly
          ? h('button', { type: 'button', class: 'small', 'aria-label': `Cancel “${preview(item.content, 30)}”`, onclick: () => cancelPrompt(item.message_id) }, 'Cancel')
          : null));
    }
    queueEmpty.hidden = items.length > 0;
    queueCount.textContent = items.length ? `(${items.length})` : '';
    updateComposer();
  }

  function renderPeople() {
    const now = Date.now();
    const { online, typingText } = presence.view(now);
    clear(peopleList);
    for (const p of online) {
      peopleList.append(h('li', { class: 'online' },
        h('span', { class: 'dot', 'aria-hidden': 'true' }), ' ', p.name,
        p.mine ? h('span', { class: 'muted' }, ' (you)') : null,
        p.typing ? h('span', { class: 'muted typing' }, ' typing…') : null));
    }
    peopleCount.textContent = `(${online.length} online)`;
    typingLine.textContent = state.readOnly ? '' : typingText;
    // "Typing" runs out on this page's clock: show the change when it does.
    clearTimeout(state.presenceTimer);
    const wait = presence.nextExpiry(now);
    if (wait !== null && !state.disposed) state.presenceTimer = setTimeout(renderPeople, wait + 20);
  }

  /** The prompts this page sent that the coordinator has not confirmed, below the timeline. */
  function renderOutbox() {
    keepingBottom(() => pendingList.replaceChildren(...outbox.pending().map((frame) =>
      h('li', { class: 'entry message ghost' },
        h('div', { class: 'meta' }, h('strong', { class: 'author me' }, presence.me?.name ?? user.name), ' ', h('span', { class: 'chip' }, 'sending…')),
        h('div', { class: 'content' }, frame.content)))));
  }

  function showSandbox(status) {
    if (!status) return;
    sandboxChip.hidden = false;
    sandboxChip.textContent = `Sandbox: ${SANDBOX_STATUS_TEXT[status] ?? String(status)}`;
    sandboxChip.className = `chip sandbox sandbox-${String(status).replace(/[^a-z_]/g, '')}`;
  }

  // ----- the branch and the pull request

  /** Shows them as they are now; an `artifact_updated` changes this in place. */
  function renderGit() {
    const view = git.view();
    const { branch, pullRequest: pr } = view;
    clear(gitBody);
    if (branch) {
      gitBody.append(h('p', { class: 'git-branch' },
        'Branch ', branch.url ? safeLink(branch.url, branch.name) : h('code', {}, branch.name),
        branch.commit ? [' at ', h('code', {}, branch.commit)] : null,
        h('br'), h('span', { class: 'muted' }, `Last push: ${branch.summary}`)));
    } else {
      gitBody.append(h('p', { class: 'muted git-hint' }, view.hint));
    }
    clear(prHead);
    prHead.hidden = !pr;
    if (pr) {
      const chip = () => h('span', { class: `chip pr-state pr-${pr.state.replace(/[^a-z]/g, '')}` }, pr.stateText);
      gitBody.append(h('p', { class: 'git-pr' },
        safeLink(pr.url, `Pull request ${pr.number}`), ' ', chip(),
        h('br'), h('span', { class: 'muted' }, `opened by ${pr.openedBy}${pr.base ? ` into ${pr.base}` : ''}`)));
      prHead.append(safeLink(pr.url, `PR ${pr.number}`), ' ', chip());
    }
    // An open pull request is the one this session has; otherwise one can be made once pushed.
    prButton.hidden = state.readOnly || pr?.state === 'open';
    prButton.disabled = !view.canCreate;
    prButton.textContent = view.createLabel;
    prButton.setAttribute('aria-busy', view.creating ? 'true' : 'false');
    if (view.creating) {
      prStatus.setAttribute('role', 'status');
      prStatus.textContent = 'Opening the pull request on GitHub…';
    } else if (view.error) {
      prStatus.setAttribute('role', 'alert');
      prStatus.textContent = describeError(view.error);
    } else {
      prStatus.setAttribute('role', 'status');
      prStatus.textContent = '';
    }
  }

  async function createPullRequest() {
    if (state.readOnly || !git.startCreate()) return;
    renderGit();
    try {
      const answer = await api.pullRequest(sessionId, {});
      if (state.disposed) return;
      git.created(answer);
      announce(`Pull request ${answer?.pull_request?.number ?? ''} is open`);
    } catch (err) {
      if (state.disposed) return;
      if (err instanceof ApiError && err.status === 401) return onUnauthorized();
      git.failed(err);
    }
    renderGit();
  }

  // ----- composer

  function toggleAttach(artifact) {
    if (state.attached.has(artifact.id)) state.attached.delete(artifact.id);
    else state.attached.set(artifact.id, artifact);
    renderAttached();
    if (!state.readOnly) textarea.focus();
  }

  function renderAttached() {
    clear(attachedList);
    for (const [id, artifact] of state.attached) {
      attachedList.append(h('li', { class: 'chip' },
        `Selection: ${preview(artifact.data?.title || artifact.data?.url || id, 40)} `,
        h('button', { type: 'button', class: 'link', 'aria-label': 'Remove this selection from the prompt', onclick: () => toggleAttach(artifact) }, '×')));
    }
    for (const id of timeline.attachButtons.keys()) timeline.refreshAttach(id);
  }

  function sendPrompt() {
    const content = textarea.value;
    if (!content.trim() || state.readOnly) return;
    const frame = { type: 'prompt', content, client_request_id: requestId() };
    if (state.attached.size) frame.selection_ids = [...state.attached.keys()];
    if (new TextEncoder().encode(JSON.stringify(frame)).length > FRAME_LIMIT) {
      showError(describeError({ code: 'too_large', message: `a prompt must fit in ${FRAME_LIMIT / 1024} KiB` }));
      return;
    }
    outbox.add(frame);
    renderOutbox();
    scroller.scrollTop = scroller.scrollHeight;
    textarea.value = '';
    state.attached.clear();
    renderAttached();
    banner.hidden = true;
    state.socket?.send(frame); // when not live, it goes after the next welcome
  }

  function cancelPrompt(messageId) {
    if (state.socket?.send({ type: 'cancel', message_id: messageId })) return;
    api.cancel(sessionId, messageId).catch((err) => showError(describeError(err)));
  }

  function stopPrompt() {
    if (state.socket?.send({ type: 'stop' })) return;
    api.stop(sessionId).catch((err) => showError(describeError(err)));
  }

  composer.addEventListener('submit', (ev) => {
    ev.preventDefault();
    sendPrompt();
  });
  textarea.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      sendPrompt();
    }
  });
  textarea.addEventListener('input', () => {
    const now = Date.now();
    if (textarea.value && now - state.lastTypingSent > TYPING_EVERY_MS && state.socket?.send({ type: 'typing' })) {
      state.lastTypingSent = now;
    }
  });

  // ----- sharing (owners)

  function renderShare() {
    if (state.role !== 'owner' || state.readOnly) return;
    const input = h('input', { id: 'share-user', type: 'text', autocomplete: 'off', spellcheck: 'false', placeholder: 'usr_…', required: true });
    const status = h('p', { class: 'form-status', role: 'status' });
    const form = h('form', { class: 'share-form' },
      h('label', { for: 'share-user' }, 'Add a member by user id'),
      h('div', { class: 'inline' }, input, h('button', { type: 'submit' }, 'Add')),
      status);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const id = input.value.trim();
      if (!id) return;
      status.textContent = 'Adding…';
      try {
        await api.addMember(sessionId, id);
        status.textContent = 'Added: they can open this session now.';
        input.value = '';
      } catch (err) {
        status.textContent = describeError(err);
      }
    });
    sharePanel.replaceChildren(h('summary', {}, 'Share'), form,
      h('p', { class: 'muted' }, 'Link to this session: ', h('code', {}, `${location.origin}/#/s/${sessionId}`), ' ',
        copyButton(`${location.origin}/#/s/${sessionId}`, 'Copy link')),
      h('p', { class: 'muted' }, 'Your user id: ', h('code', {}, user.id)));
    sharePanel.hidden = false;
  }

  // ----- start

  async function start() {
    renderGit();
    let info;
    try {
      info = await api.session(sessionId);
    } catch (err) {
      if (state.disposed) return;
      if (err instanceof ApiError && err.status === 401) return onUnauthorized();
      connBadge.textContent = 'Closed';
      connBadge.className = 'conn conn-closed';
      setReadOnly(err instanceof ApiError && err.status === 404
        ? 'This session does not exist, or you are not one of its members.'
        : describeError(err));
      return;
    }
    if (state.disposed) return;
    state.role = info.role;
    titleEl.textContent = info.session?.title || info.session?.repo || sessionId;
    repoEl.textContent = `${info.session?.repo ?? ''}${info.session?.branch ? ` · ${info.session.branch}` : ''}`;
    document.title = `${titleEl.textContent} · Sessions`;
    prompts.seed(info.queue);
    renderQueue();
    git.seed(info);
    renderGit();
    if (info.sandbox?.status) showSandbox(info.sandbox.status);
    renderShare();

    log.open(info.last_seq, storedSeq(sessionId), storedEpoch(sessionId));
    earlier.hidden = !log.moreBelow;

    if (info.session?.status === 'archived') {
      showConnection({ kind: 'closed', archived: true, reason: 'archived' });
      await loadTail();
      return;
    }
    state.socket = new SessionSocket({
      sessionId,
      mintTicket: () => api.ticket(sessionId),
      since: () => log.since,
      epoch: () => log.epoch,
      onFrame,
      onState: (s) => {
        if (state.disposed) return;
        showConnection(s);
        // An archived session stays readable: what happened up to the archive comes over HTTP.
        if (s.kind === 'closed' && s.archived) loadTail();
      },
    });
    state.socket.start();
  }

  /** Without a socket: the events after the last one held, over HTTP, then a page before them. */
  async function loadTail() {
    try {
      for (let pages = 0; pages < 50 && !state.disposed; pages++) {
        const page = await api.events(sessionId, log.since, 500);
        const events = page.events ?? [];
        keepingBottom(() => {
          show(log.tail(events), false);
          timeline.flush();
        });
        if (!page.has_more || !events.length) break;
      }
      storeSeq(sessionId, log.highest);
      prompts.clear(); // archived: nothing waits any more
      renderQueue();
      if (log.moreBelow) loadEarlier();
    } catch (err) {
      showError(describeError(err));
    }
  }

  start();
  return () => {
    state.disposed = true;
    clearInterval(state.countdown);
    clearTimeout(state.presenceTimer);
    state.socket?.stop();
  };
}
