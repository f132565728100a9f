// The session's prompts as the page knows them, without DOM: the status of each prompt, the
// queue (queued and running prompts, in order) and the outbox (prompts this page sent that the
// coordinator has not confirmed yet).

/** Sent prompt frames by `client_request_id`, until the coordinator confirms or refuses them. */
export class Outbox {
  constructor() {
    this.frames = new Map();
  }

  get size() {
    return this.frames.size;
  }

  /** Keeps a prompt frame until it is confirmed; it is sent again after every reconnect. */
  add(frame) {
    this.frames.set(frame.client_request_id, frame);
    return frame;
  }

  /**
   * The prompt was taken (its `prompt_ack`, or its `message` event, arrived); true when it was
   * waiting here.
   */
  settle(clientRequestId) {
    return typeof clientRequestId === 'string' && this.frames.delete(clientRequestId);
  }

  /** An error frame named the prompt: it was refused. Returns its frame (to give it back) or null. */
  refuse(clientRequestId) {
    const frame = this.frames.get(clientRequestId) ?? null;
    if (frame) this.frames.delete(clientRequestId);
    return frame;
  }

  /** What to send again on a new socket (the coordinator ignores a request id it has seen). */
  pending() {
    return [...this.frames.values()];
  }

  clear() {
    this.frames.clear();
  }
}

/**
 * Each prompt's status and the queue, from the session's initial state and its events, which
 * may come in any order (history pages arrive after later events).
 */
export class PromptQueue {
  constructor() {
    this.statuses = new Map(); // message_id → queued | running | completed | failed | …
    this.items = new Map(); // message_id → {message_id, status, author, content}, in queue order
  }

  /** The queue as GET /v1/sessions/:id returns it. */
  seed(queue) {
    for (const item of Array.isArray(queue) ? queue : []) {
      if (typeof item?.message_id !== 'string') continue;
      const status = item.status === 'running' ? 'running' : 'queued';
      this.items.set(item.message_id, { message_id: item.message_id, status, author: item.author, content: item.content });
      if (!this.statuses.has(item.message_id)) this.statuses.set(item.message_id, status);
    }
  }

  statusOf(messageId) {
    return this.statuses.get(messageId);
  }

  /** Applies an event; returns whether the queue changed. */
  apply(event) {
    const id = event?.message_id;
    if (typeof id !== 'string') return false;
    switch (event.type) {
      case 'message': {
        if (!this.statuses.has(id)) this.statuses.set(id, 'queued');
        // A prompt that already finished (its end came first, on a later page) is not waiting.
        if (this.items.has(id) || this.statuses.get(id) !== 'queued') return false;
        this.items.set(id, { message_id: id, status: 'queued', author: event.author, content: event.content });
        return true;
      }
      case 'prompt_started': {
        const status = this.statuses.get(id);
        if (!status || status === 'queued') this.statuses.set(id, 'running');
        const item = this.items.get(id);
        if (!item || item.status === 'running') return false;
        item.status = 'running';
        return true;
      }
      case 'prompt_finished':
        this.statuses.set(id, typeof event.status === 'string' ? event.status : 'completed');
        return this.items.delete(id);
      default:
        return false;
    }
  }

  /** Nothing waits any more (the session is archived). */
  clear() {
    this.items.clear();
  }

  /** What the queue panel shows: items with their place (`position`, 1-based, for queued ones). */
  view() {
    let position = 0;
    const items = [...this.items.values()].map((item) => ({
      ...item,
      position: item.status === 'queued' ? ++position : null,
    }));
    return { items, running: items.some((item) => item.status === 'running') };
  }
}
