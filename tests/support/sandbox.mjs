// Sandbox providers for the integration tests.
//
// - `startLocalProvider` runs the real `bridge provider` (the local provider), which starts a
//   real `bridge run` per sandbox; this is what `npm run dev` uses.
// - `startRecordingProvider` is a provider at the network boundary that checks the Worker's
//   signature, records what it was asked and lets a test dial in as the sandbox itself, so
//   tests can hold sandbox tokens (wrong, foreign, ended) that a real bridge keeps to itself.

import { spawn } from 'node:child_process';
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Client, ROOT, sleep } from './server.mjs';

export const BRIDGE_BIN = process.env.BRIDGE_BIN || path.join(ROOT, 'target', 'debug', 'bridge');

/** The signature header the Worker sends (v2), computed the same way. */
export function signature(secret, t, nonce, method, pathAndQuery, body) {
  const bodyHash = createHash('sha256').update(body).digest('hex');
  const text = `v2\n${t}\n${nonce}\n${method.toUpperCase()}\n${pathAndQuery}\n${bodyHash}`;
  return `t=${t},n=${nonce},v2=${createHmac('sha256', secret).update(text).digest('hex')}`;
}

/** Checks a v2 signature and that its nonce is new to `seen` (a Set), as a provider must. */
function verify(secret, header, method, pathAndQuery, body, seen) {
  const match = /^t=(\d+),n=([A-Za-z0-9_-]{16,128}),v2=([0-9a-f]{64})$/.exec(header ?? '');
  if (!match) return false;
  if (Math.abs(Date.now() - Number(match[1])) > 5 * 60_000) return false;
  const expected = Buffer.from(signature(secret, match[1], match[2], method, pathAndQuery, body));
  const given = Buffer.from(header);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return false;
  if (seen.has(match[2])) return false;
  seen.add(match[2]);
  return true;
}

/**
 * Starts `bridge provider` on `port`. Its bridges use the `dev` agent. It serves the local git
 * host (`/git/`) from `gitRoot` (default: an empty scratch folder, removed at the end).
 * → {port, stop(), log(), workspaces, gitRoot}
 */
export async function startLocalProvider({ port, secret, env = {}, gitRoot }) {
  if (!existsSync(BRIDGE_BIN)) {
    throw new Error(`${BRIDGE_BIN} is missing; build it with: cargo build -p bridge`);
  }
  const workspaces = await mkdtemp(path.join(os.tmpdir(), 'coordinator-sandboxes-'));
  const ownGitRoot = gitRoot ? null : await mkdtemp(path.join(os.tmpdir(), 'coordinator-git-'));
  let logText = '';
  const args = ['provider', '--listen', `127.0.0.1:${port}`, '--workspaces', workspaces, '--git-root', gitRoot ?? ownGitRoot];
  const child = spawn(BRIDGE_BIN, args, {
    env: { ...process.env, PROVIDER_SECRET: secret, AGENT: 'dev', DEV_AGENT_DELAY_MS: '5', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const append = (d) => {
    logText += d;
    if (process.env.TEST_SERVER_LOG) process.stderr.write(d);
  };
  child.stdout.on('data', append);
  child.stderr.on('data', append);
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/health`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline || child.exitCode !== null) {
      throw new Error(`bridge provider did not start on port ${port}\n${logText}`);
    }
    await sleep(100);
  }
  return {
    port,
    workspaces,
    gitRoot: gitRoot ?? ownGitRoot,
    log: () => logText,
    async stop() {
      // SIGTERM lets the provider end its bridges; the group kill covers anything left.
      try {
        process.kill(child.pid, 'SIGTERM');
      } catch {
        // already gone
      }
      await Promise.race([exited, sleep(5_000)]);
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      await rm(workspaces, { recursive: true, force: true });
      if (ownGitRoot) await rm(ownGitRoot, { recursive: true, force: true });
    },
  };
}

/**
 * A provider that records signed requests and answers as the protocol says. A test dials in
 * as the created sandbox with `dial(create)`. `down = true` makes it answer 503;
 * `failDeletes = true` answers every DELETE with 500. Every DELETE is recorded with its time in
 * `deleteAttempts`; those answered 200 in `deletes`.
 */
export async function startRecordingProvider({ secret }) {
  const provider = {
    creates: [],
    /** `POST /warm-sandboxes` bodies, and `POST /sandboxes/:id/claim` bodies with their `sandbox_id`. */
    warmStarts: [],
    claims: [],
    snapshots: [],
    /** POST /images bodies, each with the build id it was given; every build is ready at once. */
    builds: [],
    runtimeVersion: 'recording 1',
    deletes: [],
    deleteAttempts: [],
    failDeletes: false,
    unsigned: 0,
    nonces: new Set(),
    down: false,
    url: '',
    server: null,
  };
  provider.server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const answer = (status, json) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(json));
      };
      if (req.url === '/health') return answer(200, { ok: true, provider: 'local', app: 'recording', runtime_version: provider.runtimeVersion });
      if (!verify(secret, req.headers['x-coordinator-signature'], req.method, req.url, body, provider.nonces)) {
        provider.unsigned += 1;
        return answer(401, { error: { code: 'unauthorized', message: 'bad signature' } });
      }
      if (provider.down) return answer(503, { error: { code: 'unavailable', message: 'the provider is down for a test' } });
      if (req.method === 'POST' && req.url === '/sandboxes') {
        const create = JSON.parse(body);
        provider.creates.push(create);
        return answer(201, { sandbox_id: create.sandbox_id, provider_id: `rec-${provider.creates.length}` });
      }
      if (req.method === 'POST' && req.url === '/warm-sandboxes') {
        const start = JSON.parse(body);
        provider.warmStarts.push(start);
        return answer(201, { sandbox_id: start.sandbox_id, provider_id: `rec-warm-${provider.warmStarts.length}` });
      }
      const claim = /^\/sandboxes\/([^/]+)\/claim$/.exec(req.url);
      if (req.method === 'POST' && claim) {
        if (!provider.warmStarts.some((w) => w.sandbox_id === claim[1])) return answer(404, { error: { code: 'not_found', message: 'no such warm sandbox' } });
        provider.claims.push({ sandbox_id: claim[1], ...JSON.parse(body) });
        return answer(200, { sandbox_id: claim[1], provider_id: `rec-claimed-${provider.claims.length}` });
      }
      const snapshot = /^\/sandboxes\/([^/]+)\/snapshot$/.exec(req.url);
      if (req.method === 'POST' && snapshot) {
        provider.snapshots.push(snapshot[1]);
        return answer(200, { snapshot_id: `snap-${provider.snapshots.length}` });
      }
      if (req.method === 'POST' && req.url === '/images') {
        const build = { ...JSON.parse(body), build_id: `bld-${provider.builds.length + 1}` };
        provider.builds.push(build);
        return answer(202, { build_id: build.build_id });
      }
      const built = /^\/images\/([^/]+)$/.exec(req.url);
      const build = built && provider.builds.find((b) => b.build_id === built[1]);
      if (req.method === 'GET' && build) return answer(200, { status: 'ready', image_id: `img-${build.build_id}`, commit: build.commit });
      const deleted = /^\/sandboxes\/([^/]+)$/.exec(req.url);
      if (req.method === 'DELETE' && deleted) {
        provider.deleteAttempts.push({ sandbox_id: deleted[1], at: Date.now() });
        if (provider.failDeletes) return answer(500, { error: { code: 'internal', message: 'the provider fails deletes for a test' } });
        provider.deletes.push(deleted[1]);
        return answer(200, {});
      }
      return answer(404, { error: { code: 'not_found', message: 'no such provider endpoint' } });
    });
  });
  await new Promise((resolve) => provider.server.listen(0, '127.0.0.1', resolve));
  provider.url = `http://127.0.0.1:${provider.server.address().port}`;
  provider.stop = () =>
    new Promise((resolve) => {
      provider.server.close(resolve);
      provider.server.closeAllConnections();
    });
  return provider;
}

/** Waits for the `n`th create request (1-based) the recording provider received. */
export async function nthCreate(provider, n, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (provider.creates.length < n) {
    if (Date.now() > deadline) throw new Error(`the provider got ${provider.creates.length} creates, not ${n}`);
    await sleep(50);
  }
  return provider.creates[n - 1];
}

/** Dials the room as a sandbox's bridge. Rejects with `err.status` when refused. */
export function dialBridge(server, sessionId, { token, sandboxId } = {}) {
  const headers = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (sandboxId !== undefined) headers['x-sandbox-id'] = sandboxId;
  return Client.connect(`${server.wsUrl}/v1/sessions/${sessionId}/sandbox`, { headers });
}
