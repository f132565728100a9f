// What the page tells people about errors: one table for the coordinator's error codes
// (PROTOCOL.md section 1 and 2) and one for the WebSocket close codes.

const ERROR_TEXT = {
  invalid_json: 'The coordinator could not read a request from this page.',
  unknown_type: 'The coordinator does not know that kind of request.',
  invalid_field: 'The coordinator refused the request',
  too_large: 'Too large to send',
  rate_limited: 'Too many requests in a short time; wait a few seconds and try again.',
  queue_full: 'The prompt queue is full; wait for a prompt to finish or cancel one.',
  not_found: 'Not found',
  forbidden: 'Not allowed',
  unauthorized: 'Your API key was not accepted; sign in again.',
  conflict: 'Not possible right now',
  method_not_allowed: 'The coordinator does not allow that request.',
  unavailable: 'The coordinator is unavailable right now.',
  internal: 'The coordinator hit an internal error.',
  network: 'Cannot reach the coordinator.',
};

/** A sentence for an error `{code, message}` (from an error frame or an HTTP error body). */
export function describeError(error) {
  const code = error?.code ?? 'internal';
  const base = ERROR_TEXT[code] ?? `Error (${code})`;
  const detail = typeof error?.message === 'string' ? error.message.trim() : '';
  if (!detail) return base.endsWith('.') ? base : `${base}.`;
  // The general sentence, then the coordinator's own words, which say what exactly went wrong.
  return `${base.replace(/\.$/, '')}: ${detail}`;
}

/** What a WebSocket close code means for the page, and whether to reconnect. */
export function describeClose(code, reason) {
  switch (code) {
    case 4001:
      return { reconnect: true, freshToken: true, text: 'Session access expired; getting a new token.' };
    case 4003:
      return { reconnect: false, text: 'You are no longer a member of this session.' };
    case 4009:
      return { reconnect: false, archived: true, text: 'This session is archived: you can read it, but not send prompts.' };
    case 1009:
      return { reconnect: true, text: 'A message was too large for the connection.' };
    case 1000:
    case 1001:
      return { reconnect: true, text: reason || 'The connection was closed.' };
    default:
      return { reconnect: true, text: reason || 'The connection dropped.' };
  }
}

export const PROMPT_STATUS_TEXT = {
  queued: 'queued',
  running: 'running',
  completed: 'completed',
  failed: 'failed',
  cancelled: 'cancelled',
  timed_out: 'timed out',
};

export const SANDBOX_STATUS_TEXT = {
  spawning: 'starting',
  ready: 'ready',
  busy: 'working',
  idle: 'idle',
  snapshotting: 'saving a snapshot',
  stopped: 'stopped',
  failed: 'failed',
};
