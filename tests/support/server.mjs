// Test harness: runs the built Worker under `wrangler dev` on a free port with its own
// persisted state, plus small HTTP and WebSocket clients for the integration tests.
//
// Every process started here is spawned in its own process group and killed by that
// group id when the server stops, when the test process exits, or on SIGINT/SIGTERM.

import { after, afterEach, before } from 'node:test';
import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = path.join(ROOT, 'node_modules', '.bin');
const WRANGLER = path.join(BIN, 'wrangler');
const LOG_LIMIT = 512 * 1024;

// ---------------------------------------------------------------------------
// Process bookkeeping

const liveGroups = new Set();

function killGroup(pgid, signal) {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false; // already gone
  }
}

/** Whether a process of the group is still running (not a zombie waiting to be reaped). */
function groupHasLiveMember(pgid) {
  let entries;
  try {
    entries = readdirSync('/proc');
  } catch {
    return true; // no procfs: rely on signal 0 alone
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // pid (comm) state ppid pgrp …; comm may contain spaces, so split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === pgid && fields[0] !== 'Z' && fields[0] !== 'X') return true;
  }
  return false;
}

/** Waits until no process of the group is left (signal 0 fails), killing again meanwhile. */
async function waitGroupGone(pgid, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!killGroup(pgid, 0) || !groupHasLiveMember(pgid)) return true;
    killGroup(pgid, 'SIGKILL');
    await sleep(50);
  }
  return false;
}

process.on('exit', () => {
  for (const pgid of liveGroups) killGroup(pgid, 'SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    for (const pgid of liveGroups) killGroup(pgid, 'SIGKILL');
    process.exit(128 + (os.constants.signals[signal] ?? 1));
  });
}

function childEnv() {
  return {
    ...process.env,
    PATH: `${BIN}:${process.env.PATH ?? ''}`,
    WRANGLER_SEND_METRICS: 'false',
    CI: 'true',
    NO_COLOR: '1',
    FORCE_COLOR: '0',
  };
}

/** A port nobody listens on right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Runs a command to completion in its own process group, with a deadline. */
function run(cmd, args, { timeoutMs = 60_000, cwd = ROOT } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd,
      env: childEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    liveGroups.add(child.pid);
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => {
      killGroup(child.pid, 'SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} timed out after ${timeoutMs} ms\n${out}`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      liveGroups.delete(child.pid);
      reject(err);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      killGroup(child.pid, 'SIGKILL'); // anything it left behind in its group
      liveGroups.delete(child.pid);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')} exited with ${code ?? signal}\n${out}`));
    });
  });
}

/** Applies the D1 migrations to the local database under `persistDir`. */
export async function applyMigrations(persistDir, { cwd = ROOT } = {}) {
  return run(WRANGLER, ['d1', 'migrations', 'apply', 'DB', '--local', '--persist-to', persistDir], {
    timeoutMs: 60_000,
    cwd,
  });
}

/** Runs SQL on the local D1 database under `persistDir` (beside a running server) → its rows. */
export async function d1Execute(persistDir, sql, { cwd = ROOT } = {}) {
  const out = await run(WRANGLER, ['d1', 'execute', 'DB', '--local', '--persist-to', persistDir, '--json', '--command', sql], {
    timeoutMs: 60_000,
    cwd,
  });
  const json = JSON.parse(out.slice(out.indexOf('[')));
  return json.flatMap((result) => result.results ?? []);
}

/** Fires the Worker's cron handler (`wrangler dev --test-scheduled`). */
export async function fireCron(server, cron = '*/5 * * * *') {
  const res = await fetch(`${server.url}/__scheduled?cron=${encodeURIComponent(cron)}`);
  if (!res.ok) throw new Error(`/__scheduled answered ${res.status}: ${await res.text()}`);
}

// ---------------------------------------------------------------------------
// The server

function randomSecret() {
  return randomBytes(24).toString('base64url');
}

/**
 * Starts `wrangler dev` on a free port with fresh secrets. `cwd` is the project directory
 * (the one holding wrangler.toml and build/); it defaults to $COORDINATOR_DIR, else this
 * repository. Like `npm run dev`, it runs with ENV=development unless `vars` says otherwise
 * (`ENV: null` leaves wrangler.toml's own value). `healthy: false` waits for any answer to
 * GET /health rather than a 200 (for a configuration the Worker refuses).
 * @returns {Promise<{url, wsUrl, port, adminKey, tokenSecret, persistDir, stop, restart, log}>}
 */
export async function startServer({ persistDir, cwd = process.env.COORDINATOR_DIR || ROOT, vars = {}, healthy = true } = {}) {
  const ownsDir = !persistDir;
  const dir = persistDir ?? (await mkdtemp(path.join(os.tmpdir(), 'coordinator-test-')));

  const server = {
    url: '',
    wsUrl: '',
    port: 0,
    adminKey: `adm_${randomSecret()}`,
    tokenSecret: randomSecret(),
    persistDir: dir,
    /** Everything wrangler and workerd printed, across restarts. */
    log: () => logText,
    stop,
    restart,
    crash,
  };

  let logText = '';
  let child = null;
  let exited = null; // Promise resolved when the current child exits

  function appendLog(chunk) {
    logText += chunk;
    if (logText.length > LOG_LIMIT) logText = logText.slice(-LOG_LIMIT);
    if (process.env.TEST_SERVER_LOG) process.stderr.write(chunk);
  }

  async function launch(samePort = null) {
    const port = samePort ?? (await freePort());
    const inspectorPort = await freePort();
    const args = [
      'dev',
      '--ip', '127.0.0.1',
      '--port', String(port),
      '--inspector-port', String(inspectorPort),
      '--persist-to', dir,
      '--show-interactive-dev-session=false',
      // `GET /__scheduled?cron=…` fires the Worker's scheduled handler (tests/images.test.mjs).
      '--test-scheduled',
      '--var', `ADMIN_KEY:${server.adminKey}`,
      '--var', `TOKEN_SECRET:${server.tokenSecret}`,
      ...Object.entries({ ENV: 'development', ...vars })
        .filter(([, value]) => value !== null && value !== undefined)
        .flatMap(([name, value]) => ['--var', `${name}:${value}`]),
    ];
    appendLog(`\n----- wrangler dev on port ${port} -----\n`);
    const proc = spawn(WRANGLER, args, {
      cwd,
      env: childEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    child = proc;
    liveGroups.add(proc.pid);
    proc.stdout.on('data', (d) => appendLog(d.toString()));
    proc.stderr.on('data', (d) => appendLog(d.toString()));
    let exitInfo = null;
    exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        exitInfo = { code, signal };
        resolve(exitInfo);
      });
      proc.on('error', (err) => {
        exitInfo = { error: err };
        resolve(exitInfo);
      });
    });

    server.port = port;
    server.url = `http://127.0.0.1:${port}`;
    server.wsUrl = `ws://127.0.0.1:${port}`;

    const deadline = Date.now() + 60_000;
    let lastError = '';
    while (Date.now() < deadline) {
      if (exitInfo) {
        await halt();
        throw new Error(`wrangler dev exited early (${JSON.stringify(exitInfo)})\n${logText}`);
      }
      try {
        const res = await fetch(`${server.url}/health`, { signal: AbortSignal.timeout(5_000) });
        await res.arrayBuffer();
        if (res.status === 200 || !healthy) return;
        lastError = `GET /health → ${res.status}`;
      } catch (err) {
        lastError = String(err?.cause?.code ?? err?.message ?? err);
      }
      await sleep(250);
    }
    await halt();
    throw new Error(`wrangler dev did not answer GET /health with 200 within 60 s (${lastError})\n${logText}`);
  }

  /** Stops the current process group; the persisted state stays. */
  async function halt() {
    const proc = child;
    if (!proc) return;
    child = null;
    killGroup(proc.pid, 'SIGTERM');
    const done = await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)]);
    // Whatever is left in the group (workerd, esbuild) goes too.
    killGroup(proc.pid, 'SIGKILL');
    if (!done) await Promise.race([exited, sleep(2_000)]);
    await waitGroupGone(proc.pid, 5_000);
    liveGroups.delete(proc.pid);
  }

  async function stop() {
    await halt();
    if (ownsDir) await rm(dir, { recursive: true, force: true });
  }

  /**
   * Kills wrangler and workerd with SIGKILL (no chance to finish anything) and starts them again
   * on the same persisted state and the same port, so sandboxes dial back to the same address.
   */
  async function crash() {
    const proc = child;
    if (proc) {
      child = null;
      killGroup(proc.pid, 'SIGKILL');
      await Promise.race([exited, sleep(5_000)]);
      await waitGroupGone(proc.pid, 5_000);
      liveGroups.delete(proc.pid);
    }
    await launch(server.port);
    return server;
  }

  /** Stops wrangler and starts it again on the same persisted state (a new port). */
  async function restart() {
    await halt();
    await launch();
    return server;
  }

  try {
    await applyMigrations(dir, { cwd });
    await launch();
  } catch (err) {
    if (ownsDir) await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return server;
}

/** For `afterEach`: prints the tail of the server log when a test failed. */
export function logOnFailure(server, t, tail = 6_000) {
  if (t && t.passed === false && server) {
    const text = server.log();
    process.stderr.write(`\n===== server log (last ${tail} chars) for "${t.name}" =====\n${text.slice(-tail)}\n=====\n`);
  }
}

// ---------------------------------------------------------------------------
// HTTP

/**
 * JSON HTTP client for one base URL.
 * `api(base).request(method, path, {key, body, raw, headers})` → {status, json, text, headers}
 */
export function api(base) {
  const baseOf = () => (typeof base === 'function' ? base() : typeof base === 'string' ? base : base.url);
  async function request(method, urlPath, { key, body, raw, headers = {}, timeoutMs = 15_000 } = {}) {
    const h = { ...headers };
    if (key) h.authorization = `Bearer ${key}`;
    let payload;
    if (raw !== undefined) {
      payload = raw;
      if (!('content-type' in h)) h['content-type'] = 'application/json';
    } else if (body !== undefined) {
      payload = JSON.stringify(body);
      h['content-type'] = 'application/json';
    }
    const res = await fetch(baseOf() + urlPath, {
      method,
      headers: h,
      body: payload,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    return { status: res.status, json, text, headers: res.headers };
  }
  return {
    request,
    get: (p, o) => request('GET', p, o),
    post: (p, o) => request('POST', p, o),
    patch: (p, o) => request('PATCH', p, o),
    put: (p, o) => request('PUT', p, o),
    del: (p, o) => request('DELETE', p, o),
  };
}

/** The error code of an error body, or null. */
export function errorCode(res) {
  return res?.json?.error?.code ?? null;
}

function fail(what, res) {
  throw new Error(`${what}: HTTP ${res.status} ${res.text.slice(0, 500)}`);
}

let userCounter = 0;

/** Creates a user through the admin API → {id, key, name}. */
export async function createUser(server, name, scopes) {
  userCounter += 1;
  const n = name ?? `user${userCounter}`;
  const body = { name: n, email: `${n.toLowerCase().replace(/[^a-z0-9]/g, '') || 'u'}.${userCounter}.${randomBytes(3).toString('hex')}@example.com` };
  if (scopes !== undefined) body.scopes = scopes;
  const res = await api(server).post('/v1/users', { key: server.adminKey, body });
  if (res.status !== 201) fail('POST /v1/users', res);
  return { id: res.json.user.id, key: res.json.api_key, name: res.json.user.name, user: res.json.user };
}

/** Opens a session as `user` → the 201 body ({session, participant, token, expires_at, ws_url}). */
export async function createSession(server, user, body = {}) {
  const res = await api(server).post('/v1/sessions', { key: user.key, body: { repo: 'acme/demo', ...body } });
  if (res.status !== 201) fail('POST /v1/sessions', res);
  return res.json;
}

/** Adds `member` to the session as `owner`. */
export async function addMember(server, owner, sessionId, member) {
  const res = await api(server).post(`/v1/sessions/${sessionId}/members`, {
    key: owner.key,
    body: { user_id: member.id, role: 'member' },
  });
  if (res.status !== 201) fail('POST /members', res);
  return res.json;
}

/** A participant token for `user` on the session → {token, expires_at, ws_url}. */
export async function mintToken(server, user, sessionId) {
  const res = await api(server).post(`/v1/sessions/${sessionId}/tokens`, { key: user.key });
  if (res.status !== 200 && res.status !== 201) fail('POST /tokens', res);
  return res.json;
}

/** Every stored event of a session, through the paginated `GET /events`. */
export async function allEvents(server, user, sessionId) {
  const events = [];
  let since = 0;
  for (let page = 0; page < 100; page++) {
    const res = await api(server).get(`/v1/sessions/${sessionId}/events?since=${since}&limit=1000`, { key: user.key });
    if (res.status !== 200) fail('GET /events', res);
    events.push(...res.json.events);
    if (!res.json.has_more || res.json.events.length === 0) return events;
    since = res.json.events.at(-1).seq;
  }
  throw new Error('GET /events: too many pages');
}

/** The WebSocket URL of a session on the server as it runs now. */
export function sessionWsUrl(server, sessionId, token, since) {
  let u = `${server.wsUrl}/v1/sessions/${encodeURIComponent(sessionId)}/ws?token=${encodeURIComponent(token)}`;
  if (since !== undefined && since !== null) u += `&since=${since}`;
  return u;
}

// ---------------------------------------------------------------------------
// Participant tokens

export function b64url(buf) {
  return Buffer.from(buf).toString('base64url');
}

/** Signs a participant token the way the Worker does. */
export function signToken(tokenSecret, { sid, uid, exp }) {
  const payload = b64url(JSON.stringify({ sid, uid, exp }));
  const signed = `v1.${payload}`;
  const mac = createHmac('sha256', tokenSecret).update(signed).digest();
  return `${signed}.${b64url(mac)}`;
}

// ---------------------------------------------------------------------------
// WebSocket client

/**
 * A participant socket that keeps every frame it receives.
 * Use `Client.connect(url)`; `waitFor(pred, ms)` resolves with the first buffered or future
 * frame that matches (from index `from`, default 0).
 */
export class Client {
  constructor(ws, url) {
    this.ws = ws;
    this.url = url;
    this.frames = [];
    this.raw = [];
    this.waiters = new Set();
    this.closeInfo = null;
    this.closed = new Promise((resolve) => {
      const closedWith = (code, reason) => {
        if (this.closeInfo) return;
        this.closeInfo = { code, reason: reason.toString() };
        for (const w of this.waiters) w.check();
        resolve(this.closeInfo);
      };
      ws.on('close', closedWith);
      // The close frame is what the server decided; the TCP teardown after it can lag behind
      // by seconds under the dev proxy. Report the close as soon as the frame arrives (ws 8
      // emits 'conclude' on its receiver), then drop the connection once the reply is out.
      ws.once('open', () => {
        ws._receiver?.on?.('conclude', (code, reason) => {
          closedWith(code, reason ?? '');
          setTimeout(() => ws.terminate(), 100).unref();
        });
      });
    });
    ws.on('message', (data, isBinary) => {
      const text = isBinary ? Buffer.from(data).toString('utf8') : data.toString();
      this.raw.push(text);
      let frame;
      try {
        frame = JSON.parse(text);
      } catch {
        frame = { type: '<unparseable>', text };
      }
      this.frames.push(frame);
      for (const w of this.waiters) w.check();
    });
    ws.on('error', () => {});
  }

  /**
   * Opens a socket. Resolves once open; rejects with `err.status` when the upgrade is refused.
   * Options: origin, headers, timeoutMs.
   */
  static connect(url, { origin, headers, timeoutMs = 10_000 } = {}) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { origin, headers, handshakeTimeout: timeoutMs });
      const client = new Client(ws, url);
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        ws.terminate();
        reject(new Error(`WebSocket ${url} did not open within ${timeoutMs} ms`));
      }, timeoutMs);
      ws.once('open', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(client);
      });
      ws.once('unexpected-response', (req, res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          const err = new Error(`WebSocket upgrade refused: HTTP ${res.statusCode} ${body.slice(0, 300)}`);
          err.status = res.statusCode;
          err.body = body;
          ws.terminate();
          reject(err);
        });
      });
      ws.once('error', (err) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  /**
   * Outcome of a connection attempt, never throwing:
   * {opened, status?, close?: {code, reason}, frames}. Waits up to `ms` for a close after opening.
   */
  static async attempt(url, { origin, ms = 5_000 } = {}) {
    let client;
    try {
      client = await Client.connect(url, { origin });
    } catch (err) {
      return { opened: false, status: err.status ?? null, error: err.message, frames: [] };
    }
    const close = await Promise.race([client.closed, sleep(ms).then(() => null)]);
    if (!close) client.close();
    return { opened: true, close, frames: client.frames };
  }

  send(obj) {
    this.ws.send(JSON.stringify(obj));
  }

  sendRaw(data) {
    this.ws.send(data);
  }

  get isOpen() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** How many frames arrived so far (a cursor for `waitFor(…, ms, from)`). */
  mark() {
    return this.frames.length;
  }

  waitFor(pred, ms = 10_000, from = 0) {
    return new Promise((resolve, reject) => {
      const waiter = {
        check: () => {
          for (let i = from; i < this.frames.length; i++) {
            if (pred(this.frames[i])) {
              done();
              resolve(this.frames[i]);
              return;
            }
          }
          if (this.closeInfo) {
            done();
            reject(new Error(`socket closed (${this.closeInfo.code} ${this.closeInfo.reason}) before the awaited frame; got ${this.describe()}`));
          }
        },
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no matching frame within ${ms} ms; got ${this.describe()}`));
      }, ms);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      this.waiters.add(waiter);
      waiter.check();
    });
  }

  /** Waits until `n` frames match. */
  async waitForCount(pred, n, ms = 10_000) {
    await this.waitFor(() => this.frames.filter(pred).length >= n, ms);
    return this.frames.filter(pred);
  }

  /** Frames that are stored events (numeric `seq`), in arrival order. */
  events() {
    return this.frames.filter((f) => typeof f.seq === 'number');
  }

  /** Waits for the event with this seq and returns all events. */
  async waitForSeq(seq, ms = 10_000) {
    await this.waitFor((f) => typeof f.seq === 'number' && f.seq >= seq, ms);
    return this.events();
  }

  welcome(ms = 10_000) {
    return this.waitFor((f) => f.type === 'welcome', ms);
  }

  errors() {
    return this.frames.filter((f) => f.type === 'error');
  }

  /** Waits up to `ms` for a close; returns {code, reason} or null. */
  async waitClose(ms = 10_000) {
    return Promise.race([this.closed, sleep(ms).then(() => null)]);
  }

  close(code = 1000) {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
      try {
        this.ws.close(code);
      } catch {
        this.ws.terminate();
      }
    }
  }

  /** Closes and waits for the close handshake (terminates after a while). */
  async closeAndWait(ms = 3_000) {
    this.close();
    const info = await this.waitClose(ms);
    if (!info) this.ws.terminate();
    return info;
  }

  describe(max = 12) {
    const tail = this.frames.slice(-max).map((f) => JSON.stringify(f).slice(0, 200));
    return `${this.frames.length} frames, last: [${tail.join(', ')}]`;
  }
}

/** Connects as a participant and waits for the welcome → {client, welcome}. */
export async function join(server, sessionId, token, since) {
  const client = await Client.connect(sessionWsUrl(server, sessionId, token, since));
  const welcome = await client.welcome();
  return { client, welcome };
}

/** Opens every client it is given and closes them when done, even on failure. */
export class Clients {
  constructor() {
    this.list = [];
  }
  add(client) {
    this.list.push(client);
    return client;
  }
  async closeAll() {
    await Promise.all(this.list.map((c) => c.closeAndWait(2_000).catch(() => {})));
    this.list = [];
  }
}

/** Seq numbers of a list of events. */
export const seqs = (events) => events.map((e) => e.seq);

/** [a, a+1, …, b] */
export function range(a, b) {
  const out = [];
  for (let i = a; i <= b; i++) out.push(i);
  return out;
}

/** A unique request id. */
export function rid(prefix = 'r') {
  return `${prefix}-${randomBytes(6).toString('hex')}`;
}

/** Polls `fn` until it returns a truthy value (or the deadline passes) and returns that value. */
export async function eventually(fn, { ms = 10_000, every = 200, what = 'condition' } = {}) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await sleep(every);
  }
  throw new Error(`${what} not reached within ${ms} ms (last: ${JSON.stringify(last)?.slice(0, 300)})`);
}

// ---------------------------------------------------------------------------
// Server-sent events

/**
 * Opens an SSE stream. Resolves once the response headers arrived with
 * {status, headers, events, text, waitFor(pred, ms), waitForSeq(seq, ms), close()}.
 * `events` holds {id, event, data (parsed JSON or the raw string)} in arrival order.
 */
export async function openSse(url, { key, lastEventId, timeoutMs = 10_000 } = {}) {
  const controller = new AbortController();
  const headers = { accept: 'text/event-stream' };
  if (key) headers.authorization = `Bearer ${key}`;
  if (lastEventId !== undefined) headers['last-event-id'] = String(lastEventId);
  const timer = setTimeout(() => controller.abort(new Error('SSE headers timed out')), timeoutMs);
  let res;
  try {
    res = await fetch(url, { headers, signal: controller.signal });
  } finally {
    clearTimeout(timer);
  }
  const stream = {
    status: res.status,
    headers: res.headers,
    events: [],
    text: '',
    ended: false,
    listeners: new Set(),
    close() {
      controller.abort();
    },
    waitFor(pred, ms = 10_000) {
      return new Promise((resolve, reject) => {
        const l = () => {
          const hit = stream.events.find(pred);
          if (hit) {
            finish();
            resolve(hit);
          } else if (stream.ended) {
            finish();
            reject(new Error(`SSE stream ended before the awaited event; got ${stream.events.length} events`));
          }
        };
        const t = setTimeout(() => {
          finish();
          reject(new Error(`no matching SSE event within ${ms} ms; got ids [${stream.events.map((e) => e.id).join(',')}]`));
        }, ms);
        const finish = () => {
          clearTimeout(t);
          stream.listeners.delete(l);
        };
        stream.listeners.add(l);
        l();
      });
    },
    waitForSeq(seq, ms = 10_000) {
      return stream.waitFor((e) => e.data && typeof e.data === 'object' && e.data.seq >= seq, ms);
    },
  };
  const notify = () => {
    for (const l of stream.listeners) l();
  };
  if (res.status !== 200 || !(res.headers.get('content-type') ?? '').includes('text/event-stream')) {
    stream.text = await res.text().catch(() => '');
    try {
      stream.json = JSON.parse(stream.text);
    } catch {
      stream.json = null;
    }
    stream.ended = true;
    return stream;
  }
  (async () => {
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of res.body) {
        const text = decoder.decode(chunk, { stream: true });
        stream.text += text;
        buf += text.replace(/\r\n?/g, '\n');
        let idx;
        while ((idx = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, idx);
          buf = buf.slice(idx + 2);
          const ev = { id: null, event: 'message', dataLines: [] };
          let any = false;
          for (const line of block.split('\n')) {
            if (line === '' || line.startsWith(':')) continue;
            const colon = line.indexOf(':');
            const field = colon < 0 ? line : line.slice(0, colon);
            let value = colon < 0 ? '' : line.slice(colon + 1);
            if (value.startsWith(' ')) value = value.slice(1);
            if (field === 'id') ev.id = value;
            else if (field === 'event') ev.event = value;
            else if (field === 'data') ev.dataLines.push(value);
            else continue;
            any = true;
          }
          if (!any || ev.dataLines.length === 0) continue;
          const raw = ev.dataLines.join('\n');
          let data = raw;
          try {
            data = JSON.parse(raw);
          } catch {
            // keep the raw string
          }
          stream.events.push({ id: ev.id, event: ev.event, data });
        }
        notify();
      }
    } catch {
      // aborted or the connection dropped
    }
    stream.ended = true;
    notify();
  })();
  return stream;
}

/**
 * One server for a test file: starts it before the first test, closes every client after each
 * test (showing the server log's tail when the test failed) and stops the server at the end.
 * `setup(server, http)` runs once the server answers; `cleanup()` after each test and at the end.
 * `vars` (an object, or a function returning one, called first) become the Worker's vars.
 */
export function useServer({ setup, cleanup, vars } = {}) {
  const clients = new Clients();
  const context = {
    server: null,
    http: null,
    clients,
    /** Opens a participant socket (closed after the test) and waits for its welcome. */
    async connect(sessionId, token, since) {
      const client = clients.add(await Client.connect(sessionWsUrl(context.server, sessionId, token, since)));
      const welcome = await client.welcome();
      return { client, welcome };
    },
  };
  before(async () => {
    context.server = await startServer({ vars: typeof vars === 'function' ? await vars() : vars });
    context.http = api(context.server);
    await setup?.(context.server, context.http);
  });
  afterEach(async (t) => {
    logOnFailure(context.server, t);
    await cleanup?.();
    await clients.closeAll();
  });
  after(async () => {
    await cleanup?.();
    await clients.closeAll();
    await context.server?.stop();
  });
  return context;
}

/** A session owned by a fresh user (Alice), with a fresh member (Bob) added. */
export async function roomOfTwo(server, title) {
  const alice = await createUser(server, 'Alice', { repos: ['acme/*'] });
  // A member needs the session's repository in their scopes.
  const bob = await createUser(server, 'Bob', { repos: ['acme/*'] });
  const created = await createSession(server, alice, { title });
  const sid = created.session.id;
  await addMember(server, alice, sid, bob);
  return { alice, bob, created, sid };
}
