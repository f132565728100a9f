// The session timeline: turns stored events (PROTOCOL.md section 2) into DOM nodes.
//
// It is given each event once (state/events.js decides which are new) and makes exactly one
// element carrying `data-seq` for it. Top-level entries are kept in seq order, whatever order
// the events come in; an agent's work on one prompt (tokens, tool calls, file edits, the finish)
// is grouped in one block, in seq order inside it. Event content is untrusted: it only ever
// becomes text, or, for the agent's answer, the elements markdown.js makes.
//
// An answer's text arrives in many `token` deltas. Each delta gets an empty, hidden marker
// (its seq, in order); the consecutive deltas between other parts are one run, rendered as
// Markdown into an `.answer` element just before the run, at most once per animation frame.

import { h, preview, safeLink, timeEl } from './dom.js';
import { renderMarkdown } from './markdown.js';
import { PROMPT_STATUS_TEXT, SANDBOX_STATUS_TEXT, describeSessionError } from './messages.js';
import { describeGitEvent } from './state/github.js';

const MAX_PRE_CHARS = 20_000;
const ELEMENTS_SHOWN = 50;

/** Inserts `el` (with a numeric `_order`) among the children of `parent`, keeping their order. */
function insertOrdered(parent, el) {
  let after = parent.lastElementChild;
  while (after && !(after._order < el._order)) after = after.previousElementSibling;
  if (after) after.after(el);
  else parent.prepend(el);
}

function text(value) {
  if (value === undefined || value === null) return '';
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

function clip(value) {
  const s = text(value);
  return s.length > MAX_PRE_CHARS ? `${s.slice(0, MAX_PRE_CHARS)}\n… (${s.length - MAX_PRE_CHARS} more characters)` : s;
}

function statusChip(status, map = PROMPT_STATUS_TEXT) {
  const known = typeof status === 'string' ? status : 'unknown';
  return h('span', { class: `chip status-${known.replace(/[^a-z_]/g, '')}` }, map[known] ?? known);
}

/** A unified diff as lines coloured by their first character. */
function diffView(diff) {
  const pre = h('pre', { class: 'diff' });
  for (const line of clip(diff).split('\n')) {
    const cls = line.startsWith('+++') || line.startsWith('---') ? 'd-file'
      : line.startsWith('@@') ? 'd-hunk'
      : line.startsWith('+') ? 'd-add'
      : line.startsWith('-') ? 'd-del'
      : '';
    pre.append(h('span', { class: cls }, line), '\n');
  }
  return pre;
}

function describeElement(el) {
  const tag = typeof el?.tag === 'string' ? el.tag : '?';
  const id = typeof el?.id === 'string' && el.id ? `#${el.id}` : '';
  const classes = Array.isArray(el?.classes) ? el.classes.filter((c) => typeof c === 'string').slice(0, 3).map((c) => `.${c}`).join('') : '';
  return h('li', {},
    h('code', {}, `${tag}${id}${classes}`),
    typeof el?.react_component === 'string' && el.react_component ? h('span', { class: 'react' }, ` <${el.react_component}>`) : null,
    typeof el?.text === 'string' && el.text ? h('span', { class: 'el-text' }, ` “${preview(el.text, 60)}”`) : null,
  );
}

/**
 * Renders the answer runs of an agent block's body: each run of consecutive `.tok` markers gets
 * an `.answer` element just before its first marker, showing the run's text as Markdown. Only
 * runs whose text changed are rendered again; answers of runs that no longer exist go.
 */
function renderAnswers(body) {
  const runs = [];
  let run = null;
  for (const el of body.children) {
    if (el.classList.contains('answer')) continue;
    if (el.classList.contains('tok')) {
      if (!run) runs.push((run = []));
      run.push(el);
    } else {
      run = null;
    }
  }
  const kept = new Set();
  for (const markers of runs) {
    const first = markers[0];
    const source = markers.map((m) => m._delta).join('');
    let answer = first._answer;
    if (!answer) {
      answer = h('div', { class: 'answer' });
      first._answer = answer;
    }
    if (answer._source !== source) {
      answer.replaceChildren(renderMarkdown(source));
      answer._source = source;
    }
    answer._order = first._order - 0.5; // just before the run's first delta
    if (answer.nextElementSibling !== first) first.before(answer);
    kept.add(answer);
  }
  for (const el of [...body.children]) {
    if (el.classList.contains('answer') && !kept.has(el)) el.remove();
  }
}

export class Timeline {
  /**
   * @param {HTMLElement} list  the <ol> holding the entries
   * @param {object} hooks
   * @param {() => object|null} hooks.me  this page's participant ({id, …})
   * @param {(messageId: string) => string|undefined} hooks.statusOf  a prompt's status (state/prompts.js)
   * @param {(artifactId: string) => boolean} hooks.isAttached
   * @param {(artifact: object) => void} hooks.toggleAttach
   * @param {(text: string) => void} hooks.announce  for the aria-live region, used sparingly
   * @param {(render: () => void) => void} [hooks.rendering]  runs a scheduled render (to keep the scroll place)
   */
  constructor(list, hooks) {
    this.list = list;
    this.hooks = hooks;
    this.clear();
  }

  clear() {
    this.list.replaceChildren();
    this.blocks = new Map(); // message_id → agent block
    this.tools = new Map(); // message_id + call_id → tool element
    this.messages = new Map(); // message_id → {el, chip, author, content}
    this.artifacts = new Map(); // artifact id → artifact
    this.attachButtons = new Map(); // artifact id → button
    this.unrendered = new Set(); // agent blocks whose answer text changed
    cancelAnimationFrame(this.frame);
    this.frame = 0;
  }

  /**
   * Shows one stored event (one not shown yet); returns false when it has no seq.
   * `live` says it just happened (new lines are announced to screen readers only then).
   */
  add(event, { live = false } = {}) {
    const seq = event?.seq;
    if (typeof seq !== 'number' || !Number.isFinite(seq)) return false;
    try {
      this.render(event, live);
    } catch (err) {
      console.warn('timeline: cannot render event', event?.type, err);
      this.top(this.systemLine(event, `An event of type “${String(event?.type)}” could not be shown.`, 'unknown'));
    }
    return true;
  }

  render(event, live) {
    switch (event.type) {
      case 'participant_joined':
        return this.top(this.systemLine(event, `${event.participant?.name ?? 'Someone'} joined the session`, 'joined'));
      case 'participant_left':
        return this.top(this.systemLine(event, `${event.participant?.name ?? 'Someone'} left the session`, 'left'));
      case 'message':
        return this.message(event, live);
      case 'prompt_started':
        return this.promptStarted(event);
      case 'token':
        return this.token(event);
      case 'tool_call':
        return this.toolCall(event);
      case 'file_edit':
        return this.part(event, h('details', { class: 'file-edit' },
          h('summary', {}, 'Edited ', h('code', {}, String(event.path ?? '(unknown file)'))),
          event.diff ? diffView(event.diff) : h('p', { class: 'muted' }, 'No diff was sent.'),
        ));
      case 'artifact_created':
        return this.artifact(event);
      case 'artifact_updated':
        return this.artifactUpdated(event);
      case 'prompt_finished':
        return this.promptFinished(event, live);
      case 'sandbox_status':
        return this.top(this.systemLine(event,
          `Sandbox ${SANDBOX_STATUS_TEXT[event.status] ?? String(event.status ?? 'changed')}${event.warm === true ? ' (warm, from the pool)' : ''}${event.detail ? `: ${preview(event.detail, 200)}` : ''}`,
          'sandbox'));
      case 'session_error': {
        const line = this.systemLine(event, describeSessionError(event), 'error');
        if (live) this.hooks.announce(describeSessionError({ ...event, message: preview(event.message, 120) }));
        return this.top(line);
      }
      default:
        return this.top(this.systemLine(event, `Unrecognised event “${preview(event.type, 40)}”`, 'unknown'));
    }
  }

  top(el) {
    insertOrdered(this.list, el);
    return el;
  }

  entry(event, cls, ...children) {
    const el = h('li', { class: `entry ${cls}`, dataset: { seq: event.seq } }, ...children);
    el._order = event.seq;
    return el;
  }

  systemLine(event, message, kind) {
    return this.entry(event, `system system-${kind}`, h('span', { class: 'system-text' }, message), ' ', timeEl(event.ts));
  }

  authorLine(author, ts, extra = []) {
    const me = this.hooks.me();
    const mine = !!(me && author?.id && author.id === me.id);
    return h('div', { class: 'meta' },
      h('strong', { class: `author${mine ? ' me' : ''}` }, String(author?.name ?? 'Unknown')),
      mine ? h('span', { class: 'muted' }, ' (you)') : null,
      ' ', timeEl(ts), ...extra);
  }

  /** "from Slack", a link to the thread when the prompt carries its permalink (an https URL). */
  fromSlack(event) {
    const thread = Array.isArray(event.attachments) ? event.attachments.find((a) => a?.type === 'slack_thread') : null;
    const link = typeof thread?.permalink === 'string' && /^https:\/\//.test(thread.permalink) ? thread.permalink : null;
    return link
      ? h('a', { class: 'chip source slack', href: link, target: '_blank', rel: 'noopener noreferrer' }, 'from Slack')
      : h('span', { class: 'chip source slack' }, 'from Slack');
  }

  message(event, live) {
    const chip = statusChip(this.hooks.statusOf(event.message_id) ?? 'queued');
    const source = event.source === 'slack' ? this.fromSlack(event)
      : typeof event.source === 'string' && event.source !== 'web' ? h('span', { class: 'chip source' }, `via ${event.source}`) : null;
    const selections = Array.isArray(event.selection_ids) && event.selection_ids.length
      ? h('ul', { class: 'attached' }, event.selection_ids.map((id) => h('li', { class: 'chip selection-ref', dataset: { artifactId: String(id) } }, this.selectionLabel(id))))
      : null;
    const attachments = Array.isArray(event.attachments) && event.attachments.length
      ? h('p', { class: 'muted' }, `${event.attachments.length} attachment${event.attachments.length === 1 ? '' : 's'}`)
      : null;
    const el = this.entry(event, 'message',
      this.authorLine(event.author, event.ts, [' ', source, ' ', chip]),
      h('div', { class: 'content' }, typeof event.content === 'string' ? event.content : text(event.content)),
      selections, attachments);
    if (typeof event.message_id === 'string') {
      el.dataset.messageId = event.message_id;
      const known = this.messages.get(event.message_id) ?? {};
      this.messages.set(event.message_id, { ...known, el, chip, author: event.author, content: event.content });
    }
    const me = this.hooks.me();
    if (live && !(me && event.author?.id === me.id)) {
      this.hooks.announce(`${event.author?.name ?? 'Someone'}: ${preview(event.content, 120)}`);
    }
    return this.top(el);
  }

  selectionLabel(id) {
    const artifact = this.artifacts.get(id);
    const title = artifact?.data?.title || artifact?.data?.url;
    return `Selection${title ? `: ${preview(title, 40)}` : ` ${preview(id, 16)}`}`;
  }

  /** Shows a prompt's status (as state/prompts.js has it now) on the prompt and its agent block. */
  refreshStatus(messageId) {
    const status = this.hooks.statusOf(messageId);
    const known = this.messages.get(messageId);
    if (known?.chip) {
      const chip = statusChip(status ?? 'queued');
      known.chip.replaceWith(chip);
      known.chip = chip;
    }
    const block = this.blocks.get(messageId);
    if (block) {
      const chip = statusChip(status ?? 'running');
      block._chip.replaceWith(chip);
      block._chip = chip;
      block.classList.toggle('working', status === 'running');
    }
  }

  /** The agent block of a prompt, created at `seq` when it is not there yet. */
  block(messageId, seq) {
    let block = this.blocks.get(messageId);
    if (!block) {
      const prompt = this.messages.get(messageId);
      const chip = statusChip(this.hooks.statusOf(messageId) ?? 'running');
      const title = h('span', { class: 'block-title' }, 'Agent');
      const about = prompt?.content ? h('span', { class: 'muted about' }, ` on “${preview(prompt.content, 60)}”`) : null;
      block = h('li', { class: 'entry agent', dataset: { messageId: String(messageId) } },
        h('div', { class: 'meta' }, title, about, ' ', chip),
        h('div', { class: 'agent-body' }),
        h('div', { class: 'agent-end' }));
      block._order = seq;
      block._chip = chip;
      block._head = block.firstElementChild;
      block._body = block.children[1];
      block._end = block.children[2];
      this.blocks.set(messageId, block);
      this.top(block);
    } else if (seq < block._order) {
      // An earlier part arrived (history): the block moves up to it.
      block._order = seq;
      block.remove();
      this.top(block);
    }
    return block;
  }

  promptStarted(event) {
    const block = this.block(event.message_id, event.seq);
    const started = h('span', { class: 'started muted', dataset: { seq: event.seq } }, ' started ', timeEl(event.ts));
    block._head.append(started);
    this.refreshStatus(event.message_id);
    return block;
  }

  /** A piece of agent output inside its prompt's block, in seq order. */
  part(event, el) {
    el.dataset.seq = event.seq;
    el._order = event.seq;
    const block = this.block(event.message_id, event.seq);
    insertOrdered(block._body, el);
    // A part landing between two deltas splits their run (history pages come in any order).
    if (block._hasText) this.textChanged(block);
    return el;
  }

  token(event) {
    const marker = h('span', { class: 'tok', hidden: true });
    marker._delta = typeof event.delta === 'string' ? event.delta : text(event.delta);
    this.part(event, marker);
    const block = this.blocks.get(event.message_id);
    // Each byte of an answer is stored once, at its offset: a delta at an offset already
    // shown (from another seq) adds nothing.
    if (Number.isInteger(event.offset)) {
      block._offsets ??= new Set();
      if (block._offsets.has(event.offset)) marker._delta = '';
      block._offsets.add(event.offset);
    }
    block._hasText = true;
    this.textChanged(block);
    return marker;
  }

  /** Schedules a render of the block's answer text for the next animation frame. */
  textChanged(block) {
    this.unrendered.add(block);
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      if (this.hooks.rendering) this.hooks.rendering(() => this.flush());
      else this.flush();
    });
  }

  /** Renders every changed answer now (before measuring, or in tests). */
  flush() {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    for (const block of this.unrendered) renderAnswers(block._body);
    this.unrendered.clear();
  }

  toolCall(event) {
    const block = this.block(event.message_id, event.seq);
    const key = `${event.message_id}\u0000${event.call_id}`;
    let tool = this.tools.get(key);
    const row = h('div', { class: 'tool-update', dataset: { seq: event.seq } },
      statusChip(event.status, {}),
      event.input !== undefined ? h('pre', { class: 'io input' }, clip(event.input)) : null,
      event.output !== undefined ? h('pre', { class: 'io output' }, clip(event.output)) : null);
    row._order = event.seq;
    if (!tool) {
      const name = h('code', {}, String(event.tool ?? 'tool'));
      const chip = statusChip(event.status, {});
      tool = h('details', { class: 'tool' }, h('summary', {}, 'Tool ', name, ' ', chip), h('div', { class: 'tool-updates' }));
      tool._chip = chip;
      tool._latest = -Infinity;
      tool._order = event.seq;
      tool._updates = tool.lastElementChild;
      this.tools.set(key, tool);
      insertOrdered(block._body, tool);
    } else if (event.seq < tool._order) {
      // An earlier update arrived (history): the call moves up to it.
      tool._order = event.seq;
      tool.remove();
      insertOrdered(block._body, tool);
    }
    insertOrdered(tool._updates, row);
    if (event.seq > tool._latest) {
      // The summary shows the newest status.
      tool._latest = event.seq;
      const chip = statusChip(event.status, {});
      tool._chip.replaceWith(chip);
      tool._chip = chip;
      tool.classList.toggle('failed', event.status === 'error');
    }
    return row;
  }

  promptFinished(event, live) {
    const status = typeof event.status === 'string' ? event.status : 'completed';
    this.refreshStatus(event.message_id);
    const words = `Prompt ${PROMPT_STATUS_TEXT[status] ?? status}${event.error ? `: ${String(event.error)}` : ''}`;
    const block = this.blocks.get(event.message_id);
    if (live && status !== 'completed') this.hooks.announce(words);
    if (block) {
      const end = h('div', { class: `finished status-${status.replace(/[^a-z_]/g, '')}`, dataset: { seq: event.seq } }, words, ' ', timeEl(event.ts));
      end._order = event.seq;
      insertOrdered(block._end, end);
      return end;
    }
    // A prompt that never started (cancelled in the queue, or the session was archived).
    const prompt = this.messages.get(event.message_id);
    const about = prompt?.content ? ` (“${preview(prompt.content, 60)}”)` : '';
    return this.top(this.systemLine(event, `${words}${about}`, `finished status-${status.replace(/[^a-z_]/g, '')}`));
  }

  /**
   * A push to the session branch or a pull request opened or changed: one line each, with a
   * link; what they are now is shown beside the timeline (state/github.js), not here.
   */
  gitLine(event, kind, line) {
    const link = line.url ? safeLink(line.url, kind === 'pr' ? 'View pull request' : 'View branch') : null;
    const author = event.type === 'artifact_created' && kind === 'branch' ? event.artifact?.author : null;
    return this.top(this.entry(event, `artifact artifact-${kind} git-line`,
      h('span', { class: 'system-text' }, line.text), author?.name ? h('span', { class: 'muted' }, ` (prompted by ${String(author.name)})`) : null,
      link ? [' · ', link] : null, ' ', timeEl(event.ts)));
  }

  artifactUpdated(event) {
    const artifact = event.artifact && typeof event.artifact === 'object' ? event.artifact : {};
    if (typeof artifact.id === 'string' && this.artifacts.has(artifact.id)) this.artifacts.set(artifact.id, artifact);
    const line = describeGitEvent(event);
    if (line) return this.gitLine(event, artifact.type, line);
    return this.top(this.systemLine(event, `An artifact (${preview(String(artifact.type ?? 'unknown'), 30)}) was updated`, 'artifact-updated'));
  }

  artifact(event) {
    const artifact = event.artifact && typeof event.artifact === 'object' ? event.artifact : {};
    const data = artifact.data && typeof artifact.data === 'object' ? artifact.data : {};
    if (typeof artifact.id === 'string') this.artifacts.set(artifact.id, artifact);
    const kind = typeof artifact.type === 'string' ? artifact.type : 'artifact';
    const line = describeGitEvent(event);
    if (line) return this.gitLine(event, kind, line);
    const body = [];
    if (kind === 'dom_selection') {
      const elements = Array.isArray(data.elements) ? data.elements : [];
      body.push(
        data.title ? h('div', { class: 'sel-title' }, String(data.title)) : null,
        data.url ? safeLink(data.url, preview(data.url, 90)) : null,
        data.note ? h('blockquote', { class: 'note' }, String(data.note)) : null,
        h('details', { class: 'elements' },
          h('summary', {}, `${elements.length} element${elements.length === 1 ? '' : 's'}`,
            data.viewport ? h('span', { class: 'muted' }, ` · viewport ${Math.round(data.viewport.width)}×${Math.round(data.viewport.height)}`) : null),
          h('ul', {}, elements.slice(0, ELEMENTS_SHOWN).map(describeElement)),
          elements.length > ELEMENTS_SHOWN ? h('p', { class: 'muted' }, `and ${elements.length - ELEMENTS_SHOWN} more`) : null),
      );
      if (typeof artifact.id === 'string') {
        const button = h('button', { type: 'button', class: 'attach', onclick: () => this.hooks.toggleAttach(artifact) });
        this.attachButtons.set(artifact.id, button);
        this.refreshAttach(artifact.id);
        body.push(button);
      }
      // Prompts shown earlier that name this selection get its title.
      for (const ref of this.list.querySelectorAll('.selection-ref')) {
        if (ref.dataset.artifactId === artifact.id) ref.textContent = this.selectionLabel(artifact.id);
      }
    } else {
      for (const field of ['title', 'description', 'path', 'name']) {
        if (typeof data[field] === 'string' && data[field]) body.push(h('div', {}, h('span', { class: 'muted' }, `${field}: `), preview(data[field], 200)));
      }
      if (typeof data.url === 'string') body.push(safeLink(data.url, preview(data.url, 90)));
    }
    const label = { dom_selection: 'Selection', screenshot: 'Screenshot', file: 'File' }[kind] ?? `Artifact (${preview(kind, 30)})`;
    const author = artifact.author ?? { name: 'Agent' };
    return this.top(this.entry(event, `artifact artifact-${kind.replace(/[^a-z_]/g, '')}`,
      this.authorLine(author, event.ts, [' ', h('span', { class: 'chip kind' }, label)]),
      ...body));
  }

  /** Updates an artifact's "attach" button after the attachment list changed. */
  refreshAttach(artifactId) {
    const button = this.attachButtons.get(artifactId);
    if (!button) return;
    const attached = this.hooks.isAttached(artifactId);
    button.textContent = attached ? 'Attached to next prompt ✓' : 'Attach to next prompt';
    button.setAttribute('aria-pressed', attached ? 'true' : 'false');
  }
}
