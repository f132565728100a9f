// Which of a session's events the page holds, by `seq`, so that every seq is shown exactly once
// however it arrives: the replay after connecting, live, a `history` page (or GET /events) while
// scrolling up, or the HTTP tail of an archived session. No DOM here: the view asks what to show
// and what to request, and shows it.
//
// The page holds every event from `floor` to `highest`, plus stray ones it was given outside
// that range. The socket connects with `since = highest` (and the log's `epoch`) so the room
// replays exactly what came after; what lies below `floor` comes a page at a time. When the room
// cannot continue from there (its log was reset, or the replay would be too long and starts at
// its newest part), the page starts over where the replay starts.

export const PAGE = 100; // events per history page (the coordinator allows up to 500)

/** The event's seq when it is a positive integer, else null. */
function seqOf(event) {
  const seq = event?.seq;
  return Number.isInteger(seq) && seq > 0 ? seq : null;
}

export class EventLog {
  constructor({ page = PAGE } = {}) {
    this.page = page;
    this.seen = new Set();
    /** The log the page holds events of, as the room's `welcome` named it (null: not known). */
    this.epoch = null;
    this.startAt(0);
  }

  /**
   * Starts over, holding nothing, with the next live event expected after `highest` (0: from the
   * first). What lies below comes as history.
   */
  startAt(highest) {
    this.seen.clear();
    this.highest = Math.max(0, highest);
    this.floor = this.highest + 1;
    this.historyPending = false;
  }

  /**
   * Where a page opening a session starts: after the seq an earlier visit stored, when the
   * session still has it, else one page before the end.
   */
  open(lastSeq, storedSeq = null, storedEpoch = null) {
    const last = Number.isInteger(lastSeq) && lastSeq > 0 ? lastSeq : 0;
    const resumes = Number.isInteger(storedSeq) && storedSeq > 0 && storedSeq <= last;
    this.startAt(resumes ? storedSeq : last - this.page);
    this.epoch = resumes && typeof storedEpoch === 'string' ? storedEpoch : null;
  }

  /** What to send as `since=` when (re)connecting. */
  get since() {
    return this.highest;
  }

  /** How many events the page holds. */
  get size() {
    return this.seen.size;
  }

  has(seq) {
    return this.seen.has(seq);
  }

  /**
   * The `welcome` of a new socket (the whole frame, or the session's `last_seq` alone).
   * `reset`: the room's replay does not continue what the page holds (`recovered: false`, the
   * log was reset, or `replay_from` lies beyond what the page has: only the newest part of a
   * long replay comes), so the page has started over where the replay starts and must clear
   * what it shows; the replay on this socket follows. `restart`: (a coordinator that sends no
   * epoch) the session has fewer events than the page holds, so the page has started over and
   * must reconnect. `loadEarlier`: so little is coming that a history page should fill the
   * screen. A history request sent on an earlier socket is forgotten: its answer will not come.
   */
  welcome(frame) {
    this.historyPending = false;
    const isFrame = frame !== null && typeof frame === 'object';
    const lastSeq = isFrame ? frame.last_seq : frame;
    if (isFrame && typeof frame.epoch === 'string') {
      const from = Number.isInteger(frame.replay_from) && frame.replay_from > 0 ? frame.replay_from : this.highest + 1;
      const sameLog = this.epoch === null || this.epoch === frame.epoch;
      this.epoch = frame.epoch;
      if (frame.recovered === false || !sameLog || from > this.highest + 1) {
        this.startAt(from - 1);
        return { reset: true, restart: false, loadEarlier: this.floor > 1 };
      }
    }
    if (Number.isInteger(lastSeq) && lastSeq < this.highest) {
      this.startAt(lastSeq - this.page);
      return { reset: false, restart: true, loadEarlier: false };
    }
    const coming = Number.isInteger(lastSeq) ? lastSeq - this.highest : 0;
    return { reset: false, restart: false, loadEarlier: this.floor > 1 && this.size + coming < this.page / 2 };
  }

  /**
   * An event from the socket (replay or live) → 'new' (show it), 'duplicate' (already shown),
   * 'gap' (events between are missing: reconnect with `since`) or 'invalid' (no usable seq).
   */
  live(event) {
    const seq = seqOf(event);
    if (seq === null) return 'invalid';
    if (seq > this.highest + 1) return 'gap';
    if (this.seen.has(seq)) return 'duplicate';
    this.seen.add(seq);
    if (seq === this.highest + 1) this.highest = seq;
    return 'new';
  }

  /**
   * The next history request, `{before_seq, limit}`, or null when everything down to seq 1 is
   * here or a request is already out. Asking marks it as out until `history` or `historyFailed`.
   */
  requestBelow() {
    if (this.historyPending || this.floor <= 1) return null;
    this.historyPending = true;
    return { before_seq: this.floor, limit: Math.min(this.page, this.floor - 1) };
  }

  /** The history request could not be answered; it may be asked again. */
  historyFailed() {
    this.historyPending = false;
  }

  /** Whether there are events below what the page holds. */
  get moreBelow() {
    return this.floor > 1;
  }

  /**
   * A history page (the events just below `floor`, in any order) → those not shown yet, oldest
   * first. An empty page means there is nothing below.
   */
  history(events) {
    this.historyPending = false;
    const page = (Array.isArray(events) ? events : []).filter((e) => seqOf(e) !== null).sort((a, b) => a.seq - b.seq);
    this.floor = page.length ? Math.min(this.floor, page[0].seq) : 1;
    return this.fresh(page);
  }

  /**
   * A page of events after `highest` fetched over HTTP (no socket: an archived session) →
   * those not shown yet, oldest first.
   */
  tail(events) {
    const page = (Array.isArray(events) ? events : []).filter((e) => seqOf(e) !== null).sort((a, b) => a.seq - b.seq);
    const fresh = this.fresh(page);
    if (page.length) this.highest = Math.max(this.highest, page.at(-1).seq);
    return fresh;
  }

  fresh(sorted) {
    const out = [];
    for (const event of sorted) {
      if (this.seen.has(event.seq)) continue;
      this.seen.add(event.seq);
      out.push(event);
    }
    return out;
  }
}
