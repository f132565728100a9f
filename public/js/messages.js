// What the page tells people: one table of sentences for the coordinator's error codes
// (crates/protocol/src/error.rs, PROTOCOL.md sections 1 and 2), one for WebSocket close codes,
// one for the codes of `session_error` events, and the words for prompt and sandbox statuses.
// Every code is a key on its own line: a test on the Rust side reads this file and fails when a
// code of its tables has no sentence here.

const ERROR_TEXT = {
  invalid_json: 'The coordinator could not read a request from this page.',
  unknown_type: 'The coordinator does not know that kind of request.',
  invalid_field: 'The coordinator refused the request',
  too_large: 'Too large to send',
  rate_limited: 'Too many requests in a short time; wait a few seconds and try again.',
  queue_full: 'The prompt queue is full; wait for a prompt to finish or cancel one.',
  not_found: 'Not found',
  forbidden: 'Not allowed',
  unauthorized: 'You are not signed in, or your API key was not accepted; sign in again.',
  conflict: 'Not possible right now',
  gone: 'That has ended and will not come back',
  method_not_allowed: 'The coordinator does not allow that request.',
  provider_error: 'The sandbox provider failed; try again in a moment',
  not_configured: 'That is not set up on this coordinator',
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

// What each close code means for the page: its sentence, and whether reconnecting can help.
// 1000 and 1001 use the closer's own reason when it gave one.
const CLOSE_TEXT = {
  1000: { reconnect: true, text: 'The connection was closed.' },
  1001: { reconnect: true, text: 'The connection was closed.' },
  1008: { reconnect: false, text: 'You have too many connections open to this session; close one in another tab and reload.' },
  1009: { reconnect: true, text: 'A message was too large for the connection.' },
  1011: { reconnect: true, text: 'The coordinator hit an error on this connection; reconnecting.' },
  4000: { reconnect: false, text: 'A newer connection took the place of this one; reload the page to use it here again.' },
  4001: { reconnect: true, freshToken: true, text: 'Session access expired; getting a new token.' },
  4003: { reconnect: false, text: 'You are no longer a member of this session.' },
  4009: { reconnect: false, archived: true, text: 'This session is archived: you can read it, but not send prompts.' },
  4010: { reconnect: false, text: 'The sandbox of this session has ended.' },
};

/** What a WebSocket close code means for the page, and whether to reconnect. */
export function describeClose(code, reason) {
  const known = CLOSE_TEXT[code];
  if (!known) return { reconnect: true, text: reason || 'The connection dropped.' };
  if ((code === 1000 || code === 1001) && reason) return { ...known, text: reason };
  return { ...known };
}

// The codes of `session_error` events: something went wrong outside any one request.
const SESSION_ERROR_TEXT = {
  provider_error: 'The sandbox could not be started or reached',
  agent_error: 'The agent in the sandbox failed',
};

/** The line for a `session_error` event `{code, message}`. */
export function describeSessionError(event) {
  const code = typeof event?.code === 'string' ? event.code : '';
  const base = SESSION_ERROR_TEXT[code] ?? `Session error${code ? ` (${code})` : ''}`;
  const detail = typeof event?.message === 'string' ? event.message.trim() : '';
  return detail ? `${base}: ${detail}` : `${base}.`;
}

// Why a sign-in with GitHub was refused: the codes of `#/signin?error=` (PROTOCOL.md section 1).
const SIGNIN_REFUSAL_TEXT = {
  denied: 'GitHub did not authorize the sign-in.',
  expired: 'The sign-in took too long; please try again.',
  state_mismatch: 'The sign-in could not be checked; please try again.',
  exchange_failed: 'GitHub did not confirm the sign-in; please try again.',
  not_allowed: 'This GitHub account may not sign in here.',
  disabled: 'This account is disabled on the coordinator.',
};

/** The sentence for a refused sign-in `{error, reason}`: the code's, then the coordinator's words. */
export function describeSignInRefusal(refusal) {
  const base = SIGNIN_REFUSAL_TEXT[refusal?.error] ?? 'The sign-in with GitHub did not succeed.';
  const reason = typeof refusal?.reason === 'string' ? refusal.reason.trim() : '';
  if (!reason) return base;
  const detail = reason.charAt(0).toUpperCase() + reason.slice(1);
  return `${base} ${/[.!?]$/.test(detail) ? detail : `${detail}.`}`;
}

export const PR_STATE_TEXT = {
  open: 'open',
  closed: 'closed',
  merged: 'merged',
};

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
