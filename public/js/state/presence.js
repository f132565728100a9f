// Who is in the session and who is typing, without DOM or clock: every change takes the time it
// happens at (`now`, in ms), so tests drive it with plain numbers.
//
// The room sends a joiner `welcome` with the full picture (`online`, and `typing` from servers
// that send deltas); after that, `presence_delta` frames carry the changes since the last one:
//   {changes: [{change: 'joined' | 'left' | 'typing' | 'idle', participant: {id, user_id, name}, expires_in_ms?}]}
// (a frame with one change and no list is taken as that change). `typing` shows for
// `expires_in_ms` (renewed by the next `typing`), `idle` ends it early. A full `presence` frame
// may come at any time and replaces everything; older servers send only those.

/** How long "typing" shows when the frame does not say (the coordinator's own span). */
export const TYPING_SHOWN_MS = 6_000;
const TYPING_SHOWN_MAX_MS = 60_000;

function participantOf(value) {
  if (!value || typeof value !== 'object' || typeof value.id !== 'string' || !value.id) return null;
  return { id: value.id, user_id: value.user_id, name: typeof value.name === 'string' && value.name ? value.name : 'Someone' };
}

function listOf(value) {
  return (Array.isArray(value) ? value : []).map(participantOf).filter(Boolean);
}

/** "A is typing…", "A and B are typing…", "A, B and C are typing…", or '' for nobody. */
export function typingSentence(names) {
  if (!names.length) return '';
  if (names.length === 1) return `${names[0]} is typing…`;
  return `${names.slice(0, -1).join(', ')} and ${names.at(-1)} are typing…`;
}

export class Presence {
  constructor() {
    this.me = null; // this page's participant, from welcome
    this.online = new Map(); // participant id → participant, in the order they came
    this.typing = new Map(); // participant id → {participant, until}
  }

  /** Applies a `welcome`, `presence` or `presence_delta` frame; returns whether it was one. */
  apply(frame, now) {
    switch (frame?.type) {
      case 'welcome':
        this.me = participantOf(frame.participant);
        this.replace(frame.online, frame.typing, now);
        return true;
      case 'presence':
        this.replace(frame.online, frame.typing, now);
        return true;
      case 'presence_delta':
        for (const change of Array.isArray(frame.changes) ? frame.changes : [frame]) this.delta(change, now);
        return true;
      default:
        return false;
    }
  }

  replace(online, typing, now) {
    this.online.clear();
    for (const p of listOf(online)) this.online.set(p.id, p);
    this.typing.clear();
    for (const p of listOf(typing)) this.typing.set(p.id, { participant: p, until: now + TYPING_SHOWN_MS });
  }

  delta(frame, now) {
    const p = participantOf(frame.participant);
    if (!p) return;
    switch (frame.change) {
      case 'joined':
        this.online.set(p.id, p);
        return;
      case 'left':
        this.online.delete(p.id);
        this.typing.delete(p.id);
        return;
      case 'typing': {
        const ms = Number.isFinite(frame.expires_in_ms) && frame.expires_in_ms > 0
          ? Math.min(frame.expires_in_ms, TYPING_SHOWN_MAX_MS)
          : TYPING_SHOWN_MS;
        this.typing.set(p.id, { participant: p, until: now + ms });
        return;
      }
      case 'idle':
        this.typing.delete(p.id);
        return;
      default:
        // A change this page does not know: a later full `presence` sets things right.
    }
  }

  isMe(id) {
    return !!this.me && this.me.id === id;
  }

  /** Drops typing that has run out by `now`. */
  expire(now) {
    for (const [id, { until }] of this.typing) if (until <= now) this.typing.delete(id);
  }

  /**
   * What the page shows at `now`: who is online (with `mine` and `typing`), and the sentence
   * about who else is typing.
   */
  view(now) {
    this.expire(now);
    const online = [...this.online.values()].map((p) => ({
      ...p,
      mine: this.isMe(p.id),
      typing: this.typing.has(p.id) && !this.isMe(p.id),
    }));
    const names = [...new Set([...this.typing.values()].filter(({ participant }) => !this.isMe(participant.id)).map(({ participant }) => participant.name))];
    return { online, typingText: typingSentence(names) };
  }

  /** Milliseconds from `now` until the next typing runs out (the view changes then), or null. */
  nextExpiry(now) {
    let next = null;
    for (const { until } of this.typing.values()) next = next === null ? until : Math.min(next, until);
    return next === null ? null : Math.max(0, next - now);
  }
}
