// `npm run bench -- --profile`: where workerd spends its time on the coordinator's hot paths.
//
// Builds a copy of the release Worker that keeps the wasm names section (bench/results/
// profile-build; the shipped build strips it), runs it and the floor in workerd, and for each
// workload records, in two passes (the two sampling profilers at once can stall workerd)
//   - a V8 CPU profile of the Worker's isolate through the inspector (wasm functions by their
//     Rust names, the JS glue, the garbage collector), saved as .cpuprofile for DevTools, and
//   - a `perf` profile of the whole workerd process (SQLite, V8 internals, the kernel's
//     socket writes; JIT and wasm code show as unknown addresses there),
// and writes a summary of both to bench/results/profile-<workload>.txt.
//
// Workloads: fanout64 (64 participants, prompts kept in flight for 5 s), join256 (256
// participants joining one session, 32 at a time), replay100k (a
// client reconnecting to 100,000 missed events, three times), queue1 (one participant,
// prompts in flight for 8 s on a new session: the queue of waiting prompts grows meanwhile),
// ingest16 (a fake bridge streaming token frames for 4 s to 16 watchers; needs the sandbox
// path). PROFILE_ONLY=fanout64,… picks some; COORDINATOR_DIR profiles another checkout.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { Coordinator } from './lib/api.mjs';
import { loadgenRunner } from './lib/loadgen.mjs';
import { Runtime } from './lib/runtime.mjs';
import net from 'node:net';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH, '..');
const COORDINATOR_DIR = path.resolve(process.env.COORDINATOR_DIR || ROOT);
const RESULTS = path.join(BENCH, 'results');
const BUILD = path.join(RESULTS, 'profile-build');
const log = (text) => process.stderr.write(`profile: ${text}\n`);
const LIMITS = { queue_len: 10_000_000, prompts_per_window: 1_000_000_000, frames_per_window: 1_000_000_000 };

/** A minimal Chrome DevTools Protocol client. */
async function devtools(url) {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  let id = 0;
  const pending = new Map();
  ws.on('message', (data) => {
    const message = JSON.parse(data.toString());
    if (message.id && pending.has(message.id)) {
      const { resolve, reject } = pending.get(message.id);
      pending.delete(message.id);
      if (message.error) reject(new Error(JSON.stringify(message.error)));
      else resolve(message.result);
    }
  });
  return {
    send(method, params = {}) {
      id += 1;
      ws.send(JSON.stringify({ id, method, params }));
      return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
    },
    close: () => ws.close(),
  };
}

function hasPerf() {
  return spawnSync('perf', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** Self and total time per function of a V8 CPU profile, in % of the samples. */
function summarizeV8(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const name = (n) => {
    const f = n.callFrame;
    const where = f.url.startsWith('wasm://') ? 'wasm' : f.url ? path.basename(f.url) : 'native';
    return `${f.functionName || '(anonymous)'} [${where}]`;
  };
  const self = new Map();
  const total = new Map();
  let samples = 0;
  let idle = 0;
  for (const n of profile.nodes) {
    const hits = n.hitCount ?? 0;
    if (!hits) continue;
    if (n.callFrame.functionName === '(idle)') {
      idle += hits;
      continue;
    }
    samples += hits;
    self.set(name(n), (self.get(name(n)) ?? 0) + hits);
    const seen = new Set();
    for (let id = n.id; id !== undefined; id = parent.get(id)) {
      const k = name(byId.get(id));
      if (seen.has(k)) continue;
      seen.add(k);
      total.set(k, (total.get(k) ?? 0) + hits);
    }
  }
  const top = (map, count) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, count)
      .map(([k, v]) => `${((v / samples) * 100).toFixed(1).padStart(5)} %  ${k}`);
  const buckets = new Map();
  for (const [k, v] of self) {
    const bucket = k.endsWith('[wasm]') ? 'wasm (the coordinator)' : k.endsWith('[native]') ? `native: ${k.split(' [')[0]}` : 'JavaScript (wasm-bindgen glue, runtime)';
    buckets.set(bucket, (buckets.get(bucket) ?? 0) + v);
  }
  return [
    `V8 samples (busy): ${samples}, idle: ${idle}`,
    '',
    'self time by kind:',
    ...top(buckets, 10),
    '',
    'self time, top functions:',
    ...top(self, 30),
    '',
    'total time (self + callees), top functions:',
    ...top(total, 30),
  ].join('\n');
}

/**
 * Runs `work` twice: under the V8 profiler, then under perf (the two sampling profilers at
 * once can stall workerd). `work` must set up its own session or room each time.
 */
async function withProfiles(label, runtime, inspectorTarget, work) {
  log(`${label}: V8 profile`);
  // The inspector answers once the isolate has run something.
  await (await fetch(runtime.base)).arrayBuffer();
  const cdp = await devtools(`ws://127.0.0.1:${runtime.inspectorPort}/${inspectorTarget}`);
  await cdp.send('Profiler.enable');
  await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
  await cdp.send('Profiler.start');
  const result = await work();
  const { profile } = await cdp.send('Profiler.stop');
  cdp.close();
  fs.writeFileSync(path.join(RESULTS, `profile-${label}.cpuprofile`), JSON.stringify(profile));

  let perfText = 'perf is not available';
  let perfResult = null;
  if (hasPerf()) {
    log(`${label}: perf profile`);
    const perfFile = path.join(RESULTS, `profile-${label}.perf.data`);
    const perf = spawn('perf', ['record', '-e', 'cpu-clock', '-F', '999', '-g', '-p', String(runtime.pid), '-o', perfFile], { stdio: 'ignore' });
    perfResult = await work();
    perf.kill('SIGINT');
    await new Promise((resolve) => perf.on('exit', resolve));
    const report = (sort) =>
      spawnSync('perf', ['report', '-i', perfFile, '--stdio', '--no-children', '--sort', sort, '--percent-limit', '0.7', '-g', 'none'], { encoding: 'utf8', maxBuffer: 64 << 20 })
        .stdout.split('\n')
        .filter((l) => l.trim() && !l.startsWith('#'));
    perfText = [...report('dso').slice(0, 12), '', ...report('dso,sym').slice(0, 45)].join('\n');
    fs.rmSync(perfFile, { force: true });
  }
  const text = [
    `# ${label}`,
    '',
    'under the V8 profiler:',
    JSON.stringify(result.summary ?? {}, null, 1),
    'under perf:',
    JSON.stringify(perfResult?.summary ?? {}, null, 1),
    '',
    '## V8 (the isolate running the Worker and its rooms)',
    '',
    summarizeV8(profile),
    '',
    '## perf (the whole workerd process, cpu-clock)',
    '',
    perfText,
    '',
  ].join('\n');
  fs.writeFileSync(path.join(RESULTS, `profile-${label}.txt`), text);
  log(`wrote bench/results/profile-${label}.txt and .cpuprofile`);
  return text;
}

async function main() {
  fs.mkdirSync(RESULTS, { recursive: true });
  log('building a release Worker that keeps the wasm names (bench/results/profile-build)');
  const built = spawnSync('worker-build', ['--release', '--out-dir', path.relative(COORDINATOR_DIR, BUILD)], { cwd: COORDINATOR_DIR, stdio: ['ignore', 'ignore', 'inherit'] });
  if (built.status !== 0) throw new Error('worker-build failed');

  const stateRoot = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : '/tmp', 'coordinator-profile-'));
  const jobs = path.join(stateRoot, 'jobs');
  fs.mkdirSync(jobs);
  const loadgen = loadgenRunner(path.join(BENCH, 'loadgen', 'target', 'release', 'loadgen'), jobs);
  const modules = [
    { type: 'ESModule', path: path.join(BUILD, 'index.js') },
    { type: 'CompiledWasm', path: path.join(BUILD, 'index_bg.wasm') },
  ];
  const bindings = { ADMIN_KEY: 'adm_profile_key_of_at_least_32_bytes', TOKEN_SECRET: 'profile-token-secret-of-at-least-32-bytes', LIMITS: JSON.stringify(LIMITS) };
  const coordinator = new Runtime({
    name: 'coordinator',
    configPath: path.join(COORDINATOR_DIR, 'wrangler.toml'),
    modules,
    bindings,
    persistDir: path.join(stateRoot, 'coordinator'),
    inspectorPort: 9331,
  });
  const floor = new Runtime({
    name: 'floor',
    configPath: path.join(BENCH, 'floor', 'wrangler.toml'),
    modules: [{ type: 'ESModule', path: path.join(BENCH, 'floor', 'index.js') }],
    persistDir: path.join(stateRoot, 'floor'),
    inspectorPort: 9332,
  });
  try {
    await coordinator.start();
    await coordinator.migrateD1('DB', path.join(COORDINATOR_DIR, 'migrations'));
    await floor.start();
    const api = new Coordinator(coordinator.base, 'adm_profile');
    const only = (process.env.PROFILE_ONLY ?? 'fanout64,replay100k,queue1,ingest16').split(',');

    if (only.includes('fanout64')) {
      await withProfiles('fanout64-coordinator', coordinator, 'core:user:coordinator', async () => {
        const session = await api.session(64, 'profile fan-out');
        const r = await loadgen({ kind: 'fanout', subject: 'coordinator', server_pid: coordinator.pid, runs: 1, rooms: [session.urls], content_bytes: 100, flood: { secs: 5, window: 32 } });
        return { summary: r.runs[0].flood };
      });
      let rooms = 0;
      await withProfiles('fanout64-floor', floor, 'core:user:floor', async () => {
        rooms += 1;
        const room = `${floor.wsBase}/rooms/profile-fanout-${rooms}/ws`;
        const r = await loadgen({ kind: 'fanout', subject: 'floor', server_pid: floor.pid, runs: 1, rooms: [Array.from({ length: 64 }, () => room)], content_bytes: 100, pad_to: 372, flood: { secs: 5, window: 32 } });
        return { summary: r.runs[0].flood };
      });
    }
    if (only.includes('join256')) {
      await withProfiles('join256-coordinator', coordinator, 'core:user:coordinator', async () => {
        const session = await api.session(256, 'profile joins');
        const r = await loadgen({ kind: 'fanout', subject: 'coordinator', server_pid: coordinator.pid, runs: 1, rooms: [session.urls], content_bytes: 100, flood: { secs: 1, window: 1 } });
        return { summary: { join_ms: r.runs[0].join_ms } };
      });
    }
    if (only.includes('replay100k')) {
      const session = await api.session(1, 'profile replay');
      const job = { kind: 'replay', subject: 'coordinator', server_pid: coordinator.pid, url: session.urls[0], counts: [100_000], target: 100_010, content_bytes: 100, window: 64 };
      await loadgen({ ...job, fill: true, runs: 0 });
      await withProfiles('replay100k-coordinator', coordinator, 'core:user:coordinator', async () => {
        const r = await loadgen({ ...job, fill: false, runs: 3 });
        return { summary: r.replays[0].runs.map((x) => ({ total_ms: x.total_ms, cpu: x.cpu })) };
      });
    }
    if (only.includes('queue1')) {
      await withProfiles('queue1-coordinator', coordinator, 'core:user:coordinator', async () => {
        const session = await api.session(1, 'profile queue');
        const r = await loadgen({ kind: 'fanout', subject: 'coordinator', server_pid: coordinator.pid, runs: 1, rooms: [session.urls], content_bytes: 100, flood: { secs: 8, window: 32 } });
        return { summary: r.runs[0].flood };
      });
    }
    if (only.includes('ingest16')) {
      // A runtime of its own, with the local provider pointing at the load generator.
      const port = await new Promise((resolve) => {
        const server = net.createServer().listen(0, '127.0.0.1', () => {
          const { port: p } = server.address();
          server.close(() => resolve(p));
        });
      });
      const sandboxed = new Runtime({
        name: 'coordinator',
        configPath: path.join(COORDINATOR_DIR, 'wrangler.toml'),
        modules,
        bindings: { ...bindings, ENV: 'development', PROVIDER: 'local', PROVIDER_URL: `http://127.0.0.1:${port}`, PROVIDER_SECRET: 'profile-provider-secret-of-at-least-32-bytes' },
        persistDir: path.join(stateRoot, 'ingest'),
        inspectorPort: 9333,
      });
      await sandboxed.start();
      try {
        await sandboxed.migrateD1('DB', path.join(COORDINATOR_DIR, 'migrations'));
        const sandboxApi = new Coordinator(sandboxed.base, 'adm_profile');
        await withProfiles('ingest16-coordinator', sandboxed, 'core:user:coordinator', async () => {
          const session = await sandboxApi.session(16, 'profile ingest');
          const r = await loadgen({ kind: 'ingest', subject: 'coordinator', server_pid: sandboxed.pid, runs: 1, secs: 4, delta_bytes: 16, window: 4096, watchers: session.urls, provider_port: port, ws_base: sandboxed.wsBase });
          return { summary: r.skipped ?? r.runs[0] };
        });
      } finally {
        await sandboxed.stop();
      }
    }
  } finally {
    await Promise.allSettled([coordinator.stop(), floor.stop()]);
    fs.rmSync(stateRoot, { recursive: true, force: true });
  }
}

await main();
