// Why the benchmark runs the Worker through Miniflare's API and not `wrangler dev`: the same
// built Worker, the same load (N participants, 50 prompts/s for 3 s, then prompts kept in
// flight for 3 s), once behind `wrangler dev` and once on workerd's own port.
//
//   node bench/tools/dev-proxy.mjs [N]      (after `npm run bench` has built everything)

import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Coordinator } from '../lib/api.mjs';
import { loadgenRunner } from '../lib/loadgen.mjs';
import { Runtime } from '../lib/runtime.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const WRANGLER = path.join(ROOT, 'node_modules', '.bin', 'wrangler');
const participants = Number(process.argv[2] ?? 16);
const limits = JSON.stringify({ queue_len: 10_000_000, prompts_per_window: 1e9, frames_per_window: 1e9 });
const dir = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'coordinator-dev-proxy-'));
fs.mkdirSync(path.join(dir, 'jobs'));
const loadgen = loadgenRunner(path.join(ROOT, 'bench', 'loadgen', 'target', 'release', 'loadgen'), path.join(dir, 'jobs'));

async function measure(label, base) {
  const api = new Coordinator(base, 'adm_dev_proxy');
  for (let run = 0; run < 2; run += 1) {
    const session = await api.session(participants);
    const [r] = (
      await loadgen({
        kind: 'fanout',
        subject: 'coordinator',
        server_pid: 0,
        runs: 1,
        rooms: [session.urls],
        content_bytes: 100,
        fixed: { rate: 50, secs: 3 },
        flood: { secs: 3, window: 32 },
      })
    ).runs;
    const l = r.fixed.latency;
    console.log(`${label}  N=${participants}  50/s: p50 ${l.p50_ms} p99 ${l.p99_ms} max ${l.max_ms} ms  |  in flight: ${r.flood.completed_per_s} prompts/s  |  join ${r.join_ms} ms`);
  }
}

async function main() {
  const persist = path.join(dir, 'wrangler');
  execFileSync(WRANGLER, ['d1', 'migrations', 'apply', 'DB', '--local', '--persist-to', persist], { cwd: ROOT, stdio: 'ignore' });
  const port = 18787 + Math.floor(Math.random() * 1000);
  const dev = spawn(
    WRANGLER,
    ['dev', '--ip', '127.0.0.1', '--port', String(port), '--persist-to', persist, '--show-interactive-dev-session=false',
      '--var', 'ADMIN_KEY:adm_dev_proxy', '--var', 'TOKEN_SECRET:dev-proxy-secret', '--var', `LIMITS:${limits}`],
    { cwd: ROOT, detached: true, stdio: 'ignore', env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: 'true' } },
  );
  try {
    for (let i = 0; i < 120; i += 1) {
      const up = await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.ok, () => false);
      if (up) break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    await measure('wrangler dev     ', `http://127.0.0.1:${port}`);
  } finally {
    process.kill(-dev.pid, 'SIGKILL');
  }
  const runtime = new Runtime({
    name: 'coordinator',
    configPath: path.join(ROOT, 'wrangler.toml'),
    modules: [
      { type: 'ESModule', path: path.join(ROOT, 'build', 'index.js') },
      { type: 'CompiledWasm', path: path.join(ROOT, 'build', 'index_bg.wasm') },
    ],
    bindings: { ADMIN_KEY: 'adm_dev_proxy', TOKEN_SECRET: 'dev-proxy-secret', LIMITS: limits },
    persistDir: path.join(dir, 'miniflare'),
  });
  await runtime.start();
  try {
    await runtime.migrateD1('DB', path.join(ROOT, 'migrations'));
    await measure('miniflare/workerd', runtime.base);
  } finally {
    await runtime.stop();
  }
}

try {
  await main();
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
