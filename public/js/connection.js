// One participant WebSocket to a session, kept alive: a fresh connect ticket (single use, 30 s)
// for every attempt, `since=<last seq seen>` so the coordinator replays exactly what was missed, backoff
// between attempts, a keep-alive ping, and a state the page can show.
//
// States: {kind: 'connecting'} | {kind: 'live'} |
//         {kind: 'reconnecting', at: <ms epoch of the next attempt>, reason} |
//         {kind: 'closed', reason, code, archived?}

import { ApiError } from './api.js';
import { describeClose } from './messages.js';

const PING_EVERY_MS = 25_000;
const PONG_WITHIN_MS = 10_000;

/** Delay before reconnect attempt `n` (1-based): 0.5 s doubling up to 15 s, with jitter. */
export function backoffMs(n) {
  const base = Math.min(15_000, 500 * 2 ** Math.max(0, n - 1));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

export class SessionSocket {
  /**
   * @param {object} o
   * @param {string} o.sessionId
   * @param {() => Promise<{ticket: string}>} o.mintTicket  a fresh connect ticket
   * @param {() => number} o.since  the last seq this page has, sent as `since`
   * @param {() => (string|null)} [o.epoch]  the log that seq is of, sent as `epoch`
   * @param {(frame: object) => void} o.onFrame
   * @param {(state: object) => void} o.onState
   */
  constructor({ sessionId, mintTicket, since, epoch = () => null, onFrame, onState }) {
    this.sessionId = sessionId;
    this.mintTicket = mintTicket;
    this.since = since;
    this.epoch = epoch;
    this.onFrame = onFrame;
    this.onState = onState;
    this.ws = null;
    this.state = { kind: 'connecting' };
    this.attempt = 0;
    this.stopped = false;
    this.timer = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.onOnline = () => this.state.kind === 'reconnecting' && this.reconnectNow();
    window.addEventListener('online', this.onOnline);
  }

  setState(state) {
    this.state = state;
    this.onState(state);
  }

  get live() {
    return this.state.kind === 'live' && this.ws?.readyState === WebSocket.OPEN;
  }

  start() {
    this.connect();
  }

  /** Sends a frame when live; returns whether it was sent. */
  send(frame) {
    if (!this.live) return false;
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
    return true;
  }

  /** Skips the wait of a scheduled reconnect. */
  reconnectNow() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.connect();
  }

  /** Drops the current socket (if any) and connects again with `since`. */
  restart(reason = 'resyncing') {
    if (this.stopped) return;
    const ws = this.ws;
    this.detach();
    try {
      ws?.close(1000, reason);
    } catch {
      // already closing
    }
    this.scheduleReconnect(reason, 0);
  }

  /** Closes for good (leaving the page or the session). */
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    window.removeEventListener('online', this.onOnline);
    const ws = this.ws;
    this.detach();
    try {
      ws?.close(1000, 'leaving');
    } catch {
      // already closing
    }
  }

  detach() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
    if (this.ws) {
      this.ws.onopen = this.ws.onmessage = this.ws.onclose = this.ws.onerror = null;
    }
    this.ws = null;
  }

  async connect() {
    if (this.stopped) return;
    this.setState({ kind: 'connecting' });
    this.attempt += 1;
    let ticket;
    try {
      ({ ticket } = await this.mintTicket());
    } catch (err) {
      if (this.stopped) return;
      if (err instanceof ApiError && [401, 403, 404].includes(err.status)) {
        // The key no longer works, or the session is gone or not ours: retrying cannot help.
        this.stopped = true;
        this.setState({ kind: 'closed', code: err.status, reason: err.message, fatal: err.code });
        return;
      }
      if (err instanceof ApiError && err.status === 409) {
        this.stopped = true;
        this.setState({ kind: 'closed', code: 4009, archived: true, reason: describeClose(4009).text });
        return;
      }
      this.scheduleReconnect(err?.message || 'cannot get a connect ticket');
      return;
    }
    if (this.stopped) return;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const since = this.since();
    const epoch = this.epoch();
    const url =
      `${scheme}://${location.host}/v1/sessions/${encodeURIComponent(this.sessionId)}/ws` +
      `?ticket=${encodeURIComponent(ticket)}&since=${since}` + // since=0 replays everything
      (epoch ? `&epoch=${encodeURIComponent(epoch)}` : '');
    const ws = new WebSocket(url);
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.startPing();
    };
    ws.onmessage = (msg) => {
      let frame;
      try {
        frame = JSON.parse(msg.data);
      } catch {
        return; // not ours to understand
      }
      if (frame?.type === 'pong') {
        clearTimeout(this.pongTimer);
        return;
      }
      if (frame?.type === 'welcome') {
        this.attempt = 0;
        this.setState({ kind: 'live' });
      }
      this.onFrame(frame);
    };
    ws.onclose = (ev) => {
      this.detach();
      if (this.stopped) return;
      const meaning = describeClose(ev.code, ev.reason);
      if (!meaning.reconnect) {
        this.stopped = true;
        this.setState({ kind: 'closed', code: ev.code, reason: meaning.text, archived: !!meaning.archived });
        return;
      }
      // 4001 (token or ticket expired) reconnects at once with a new ticket, the first time;
      // anything else, or a ticket refused again, backs off. A disabled user's next ticket is
      // refused with 401, which closes for good above.
      const immediate = ev.code === 4001 && this.attempt <= 1;
      this.scheduleReconnect(opened ? meaning.text : 'cannot open the connection', immediate ? 0 : undefined);
    };
    ws.onerror = () => {
      // onclose follows and decides.
    };
  }

  scheduleReconnect(reason, delay = backoffMs(this.attempt)) {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.setState({ kind: 'reconnecting', at: Date.now() + delay, reason });
    this.timer = setTimeout(() => this.connect(), delay);
  }

  startPing() {
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (this.ws?.readyState !== WebSocket.OPEN) return;
      // Exactly this text: the coordinator answers it without waking the session.
      this.ws.send('{"type":"ping"}');
      clearTimeout(this.pongTimer);
      this.pongTimer = setTimeout(() => this.restart('no answer to a keep-alive'), PONG_WITHIN_MS);
    }, PING_EVERY_MS);
  }
}
