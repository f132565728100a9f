// Chaos: the built Worker in workerd (through Miniflare, on a fixed port so sandboxes can dial
// back after a restart), the real local provider with `bridge run` and the `dev` agent, and
// participants that prompt while the agent streams. Each cycle kills workerd with SIGKILL at a
// random moment, starts it again on the same state, and checks the session's log; the last
// check waits for every prompt to finish. Used by tests/chaos.test.mjs (a few cycles) and
// `npm run chaos -- --cycles N` (scripts/chaos.mjs).
//
// What the log must show, after every cycle and at the end:
// - `seq` runs 1, 2, 3, … with no gap and no repeat;
// - every acknowledged prompt (its sender got `prompt_ack`) is there exactly once, and no
//   `client_request_id` is there twice;
// - no prompt finishes twice; at the end every prompt has finished;
// - the answer of every completed prompt is whole: the dev agent answers a prompt with
//   `Working on: <its first line>\n` (after a `Context: <n> earlier prompts` line when a new
//   sandbox brought the transcript), so the text it must have is known. What is missing is
//   counted in bytes per prompt (`textLoss`); the caller decides whether that fails.

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { Runtime, freePort } from '../../bench/lib/runtime.mjs';
import { startLocalProvider } from './sandbox.mjs';
import { ROOT, sleep } from './server.mjs';

const secret = () => randomBytes(32).toString('base64url');

/** A small seeded generator (mulberry32), so a run can be repeated with its seed. */
export function random(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, between: (lo, hi) => lo + (hi - lo) * next(), int: (lo, hi) => Math.floor(lo + (hi - lo + 1) * next()) };
}

/** What the dev agent answers to `content` (crates/bridge/src/agent/dev.rs), for prompts of prose and `sleep` lines. */
export function expectedAnswer(content) {
  return `Working on: ${content.split('\n')[0].trim()}\n`;
}

const WORDS = ['streams', 'the', 'answer', 'while', 'workerd', 'is', 'killed', 'and', 'every', 'byte', 'must', 'arrive', 'once'];

/** A prompt: short, or a first line of many words (a long answer), sometimes with a `sleep`. */
function promptContent(rng, n) {
  const long = rng.next() < 0.5;
  const words = long ? rng.int(100, 300) : rng.int(2, 8);
  const line = Array.from({ length: words }, (_, i) => (i === 0 ? `p${n}` : WORDS[rng.int(0, WORDS.length - 1)])).join(' ');
  return rng.next() < 0.3 ? `${line}\nsleep ${rng.int(100, 800)}` : line;
}

/** A member's socket that reconnects with `since` and sends again what was not acknowledged. */
class Participant {
  constructor(harness, user) {
    Object.assign(this, { harness, user });
    this.lastSeq = 0;
    this.ws = null;
    this.unacked = new Map(); // client_request_id → content
    this.stopped = false;
    this.welcomed = 0;
    this.errors = [];
  }

  async token() {
    const { harness } = this;
    const res = await fetch(`${harness.runtime.base}/v1/sessions/${harness.sessionId}/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.user.key}` },
      signal: AbortSignal.timeout(5_000),
    });
    if (res.status !== 200) throw new Error(`POST /tokens: ${res.status}`);
    return (await res.json()).token;
  }

  /** Keeps one socket open until stopped; each new socket resends every unacknowledged prompt. */
  async run() {
    while (!this.stopped) {
      try {
        const token = await this.token();
        const url = `${this.harness.runtime.wsBase}/v1/sessions/${this.harness.sessionId}/ws?token=${encodeURIComponent(token)}&since=${this.lastSeq}`;
        await new Promise((resolve) => {
          const ws = new WebSocket(url);
          this.ws = ws;
          ws.on('message', (data) => this.onFrame(JSON.parse(data.toString())));
          ws.on('close', resolve);
          ws.on('error', () => ws.terminate());
        });
      } catch {
        // workerd is down, or starting
      }
      this.ws = null;
      if (!this.stopped) await sleep(200);
    }
  }

  onFrame(frame) {
    if (typeof frame.seq === 'number') this.lastSeq = Math.max(this.lastSeq, frame.seq);
    if (frame.type === 'welcome') {
      this.welcomed += 1;
      for (const [id, content] of this.unacked) this.write(id, content);
    } else if (frame.type === 'prompt_ack') {
      if (this.unacked.delete(frame.client_request_id)) {
        this.harness.acked.set(frame.client_request_id, frame.message_id);
      }
    } else if (frame.type === 'error') {
      this.errors.push(frame);
      // A prompt refused for good is no longer waiting for its ack.
      if (frame.client_request_id && !['rate_limited', 'internal', 'unavailable'].includes(frame.code)) {
        this.unacked.delete(frame.client_request_id);
        this.harness.refused.push(frame);
      }
    } else if (frame.type === 'token') {
      this.harness.lastTokenAt = performance.now();
    }
  }

  write(id, content) {
    if (this.ws?.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ type: 'prompt', content, client_request_id: id }));
    }
  }

  prompt(id, content) {
    this.unacked.set(id, content);
    this.harness.contents.set(id, content);
    this.write(id, content);
  }

  stop() {
    this.stopped = true;
    this.ws?.close();
  }
}

/** Reads the whole log of the session over HTTP. */
async function readLog(harness) {
  const events = [];
  let since = 0;
  for (;;) {
    const res = await fetch(`${harness.runtime.base}/v1/sessions/${harness.sessionId}/events?since=${since}&limit=1000`, {
      headers: { authorization: `Bearer ${harness.owner.key}` },
      signal: AbortSignal.timeout(15_000),
    });
    if (res.status !== 200) throw new Error(`GET /events: ${res.status} ${await res.text()}`);
    const page = await res.json();
    events.push(...page.events);
    if (!page.has_more || page.events.length === 0) return events;
    since = page.events.at(-1).seq;
  }
}

/**
 * Checks the log. → {problems: [sentences], prompts, finished, completed, textLoss: [{message_id,
 * expected, stored, lost}], lostBytes, unfinished}. `final`: every prompt must have finished.
 */
export function checkLog(events, { acked, contents }, { final }) {
  const problems = [];
  events.forEach((event, i) => {
    if (event.seq !== i + 1) problems.push(`seq ${event.seq} at position ${i + 1}: a gap or a repeat`);
  });
  const messages = events.filter((e) => e.type === 'message');
  const byRequest = new Map();
  for (const m of messages) {
    if (!m.client_request_id) continue;
    if (byRequest.has(m.client_request_id)) problems.push(`${m.client_request_id} is in the log twice`);
    byRequest.set(m.client_request_id, m);
  }
  for (const [id, messageId] of acked) {
    const m = byRequest.get(id);
    if (!m) problems.push(`acknowledged prompt ${id} (${messageId}) is not in the log`);
    else if (m.message_id !== messageId) problems.push(`${id} was acknowledged as ${messageId} but stored as ${m.message_id}`);
  }
  const finishes = new Map();
  for (const f of events.filter((e) => e.type === 'prompt_finished')) {
    if (finishes.has(f.message_id)) problems.push(`${f.message_id} finished twice`);
    finishes.set(f.message_id, f);
  }
  const unfinished = messages.filter((m) => !finishes.has(m.message_id)).map((m) => m.message_id);
  if (final && unfinished.length) problems.push(`${unfinished.length} prompts never finished: ${unfinished.slice(0, 5).join(', ')}`);
  const text = new Map();
  for (const t of events.filter((e) => e.type === 'token')) text.set(t.message_id, (text.get(t.message_id) ?? '') + t.delta);
  const textLoss = [];
  let completed = 0;
  for (const m of messages) {
    const finish = finishes.get(m.message_id);
    if (finish?.status !== 'completed') continue;
    completed += 1;
    const content = contents.get(m.client_request_id) ?? m.content;
    const expected = Buffer.byteLength(expectedAnswer(content));
    // A sandbox replaced meanwhile starts its first answer by naming the transcript it got.
    const stored = (text.get(m.message_id) ?? '').replace(/^Context: \d+ earlier prompts?( \(\d+ more left out\))?\n/, '');
    if (stored !== expectedAnswer(content)) {
      textLoss.push({ message_id: m.message_id, expected, stored: Buffer.byteLength(stored), lost: expected - Buffer.byteLength(stored) });
    }
  }
  return {
    problems,
    prompts: messages.length,
    finished: finishes.size,
    completed,
    statuses: [...finishes.values()].reduce((counts, f) => ({ ...counts, [f.status]: (counts[f.status] ?? 0) + 1 }), {}),
    unfinished,
    textLoss,
    lostBytes: textLoss.reduce((sum, t) => sum + Math.max(0, t.lost), 0),
  };
}

/**
 * Runs `cycles` crash cycles. `onCycle(i, check)` sees each cycle's check. → the final check
 * with {cycles, acked, sent, seed, seconds, refused}.
 */
export async function runChaos({ cycles, seed = Date.now() % 2 ** 31, participants = 3, log = () => {}, onCycle = () => {} }) {
  const rng = random(seed);
  const started = performance.now();
  const stateDir = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'coordinator-chaos-'));
  const providerSecret = secret();
  const providerPort = await freePort();
  const adminKey = `adm_${secret()}`;
  const harness = {
    runtime: new Runtime({
      name: 'coordinator',
      configPath: path.join(ROOT, 'wrangler.toml'),
      modules: [
        { type: 'ESModule', path: path.join(ROOT, 'build', 'index.js') },
        { type: 'CompiledWasm', path: path.join(ROOT, 'build', 'index_bg.wasm') },
      ],
      bindings: {
        ENV: 'development',
        ADMIN_KEY: adminKey,
        TOKEN_SECRET: secret(),
        PROVIDER: 'local',
        PROVIDER_URL: `http://127.0.0.1:${providerPort}`,
        PROVIDER_SECRET: providerSecret,
        // Prompts queue up while workerd is down and the agent streams: the limits must not refuse them.
        LIMITS: JSON.stringify({ queue_len: 10_000, prompts_per_window: 1_000_000, frames_per_window: 1_000_000 }),
      },
      persistDir: path.join(stateDir, 'state'),
      port: await freePort(),
    }),
    sessionId: null,
    owner: null,
    acked: new Map(),
    contents: new Map(),
    refused: [],
    lastTokenAt: 0,
  };
  const { runtime } = harness;
  let provider = null;
  const members = [];
  try {
    provider = await startLocalProvider({ port: providerPort, secret: providerSecret, env: { DEV_AGENT_DELAY_MS: '8', HEARTBEAT_SECS: '1' } });
    await runtime.start();
    await runtime.migrateD1('DB', path.join(ROOT, 'migrations'));
    const admin = async (method, urlPath, key, body) => {
      const res = await fetch(`${runtime.base}${urlPath}`, {
        method,
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: body && JSON.stringify(body),
      });
      if (res.status >= 300) throw new Error(`${method} ${urlPath}: ${res.status} ${await res.text()}`);
      return res.json();
    };
    const users = [];
    for (let i = 0; i < participants; i += 1) {
      const created = await admin('POST', '/v1/users', adminKey, { name: `Chaos ${i}`, email: `chaos${i}@example.com`, scopes: { repos: ['*'] } });
      users.push({ id: created.user.id, key: created.api_key });
    }
    harness.owner = users[0];
    harness.sessionId = (await admin('POST', '/v1/sessions', users[0].key, { repo: 'acme/demo', title: 'chaos' })).session.id;
    for (const user of users.slice(1)) {
      await admin('POST', `/v1/sessions/${harness.sessionId}/members`, users[0].key, { user_id: user.id, role: 'member' });
    }
    for (const user of users) members.push(new Participant(harness, user));
    const running = members.map((m) => m.run());

    let sent = 0;
    let sending = true;
    const sender = (async () => {
      while (sending) {
        const member = members[rng.int(0, members.length - 1)];
        sent += 1;
        member.prompt(`chaos-${seed}-${sent}`, promptContent(rng, sent));
        // About as fast as the agent answers, so the queue stays short across the crashes.
        await sleep(rng.between(400, 2400));
      }
    })();

    const checks = [];
    for (let cycle = 1; cycle <= cycles; cycle += 1) {
      // Kill while the agent streams: wait for a token event, then a random moment more.
      const waitFrom = performance.now();
      while (harness.lastTokenAt < waitFrom && performance.now() - waitFrom < 15_000) await sleep(20);
      await sleep(rng.between(0, 1500));
      const pid = runtime.pid;
      process.kill(pid, 'SIGKILL');
      await runtime.stop().catch(() => {});
      await sleep(rng.between(0, 1000));
      await runtime.start();
      // Every participant is back (a welcome after the restart) before the log is read.
      const welcomed = members.map((m) => m.welcomed);
      const deadline = performance.now() + 30_000;
      while (members.some((m, i) => m.welcomed === welcomed[i]) && performance.now() < deadline) await sleep(50);
      // The acknowledgements received before the log is read: an ack leaves the room only after
      // its prompt is stored, so each of these must be in what is read next.
      const acked = new Map(harness.acked);
      const check = checkLog(await readLog(harness), { ...harness, acked }, { final: false });
      checks.push(check);
      log(`cycle ${cycle}/${cycles}: killed workerd ${pid}; ${harness.acked.size} prompts acknowledged, ${check.prompts} in the log, ${check.finished} finished, ${check.lostBytes} bytes of answer missing, ${check.problems.length} problems`);
      await onCycle(cycle, check);
    }

    sending = false;
    await sender;
    // Everything sent is acknowledged, and every prompt finishes: wait while prompts still
    // finish, and give up after a minute without one.
    let final;
    let progress = { finished: -1, at: performance.now() };
    for (;;) {
      const acked = new Map(harness.acked);
      final = checkLog(await readLog(harness), { ...harness, acked }, { final: true });
      const waiting = members.reduce((n, m) => n + m.unacked.size, 0);
      if (waiting === 0 && final.unfinished.length === 0) break;
      if (final.finished !== progress.finished) progress = { finished: final.finished, at: performance.now() };
      if (performance.now() - progress.at > 60_000) break;
      await sleep(500);
    }
    return {
      ...final,
      cycles,
      seed,
      sent,
      acked: harness.acked.size,
      refused: harness.refused,
      perCycle: checks,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    for (const m of members) m.stop();
    await runtime.stop().catch(() => {});
    await provider?.stop();
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
}
