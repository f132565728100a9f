// `npm run bench` (after scripts/bench.sh has built everything): starts the coordinator and
// the floor in local workerd, runs the scenarios with the Rust load generator, prints the
// table and writes it as JSON (and Markdown) under bench/results/.
//
// Environment knobs (defaults are the full benchmark):
//   BENCH_RUNS=3            runs per scenario (the median is reported, with min–max)
//   BENCH_N=1,16,64,256     participants for scenarios 1 and 2
//   BENCH_ONLY=fanout,ingest,replay,cold,warm   scenarios to run (warm: a warm sandbox against a cold one)
//   BENCH_REPLAY=10000,100000              missed events for scenario 4
//   COORDINATOR_DIR=path    benchmark another checkout's built Worker (its wrangler.toml,
//                           build/ and migrations/) instead of this one's

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Coordinator } from './lib/api.mjs';
import { loadgenRunner } from './lib/loadgen.mjs';
import { renderMarkdown, renderText } from './lib/report.mjs';
import { machineTicks, Runtime } from './lib/runtime.mjs';
import { cold } from './scenarios/cold.mjs';
import { fanout } from './scenarios/fanout.mjs';
import { ingest } from './scenarios/ingest.mjs';
import { replay } from './scenarios/replay.mjs';
import { warm } from './scenarios/warm.mjs';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH, '..');
const COORDINATOR_DIR = path.resolve(process.env.COORDINATOR_DIR || ROOT);
const list = (value, fallback) => (value ? value.split(',').map((s) => s.trim()).filter(Boolean) : fallback);

const started = performance.now();
const log = (text) => process.stderr.write(`bench: ${text}\n`);

// Limits raised so that neither rate limits nor the queue bound refuse the benchmark's prompts.
const LIMITS = {
  queue_len: 10_000_000,
  prompts_per_window: 1_000_000_000,
  frames_per_window: 1_000_000_000,
};

const only = list(process.env.BENCH_ONLY, ['fanout', 'ingest', 'replay', 'cold', 'warm']);
const config = {
  runs: Number(process.env.BENCH_RUNS ?? 3),
  participants: list(process.env.BENCH_N, ['1', '16', '64', '256']).map(Number),
  fixed_rate: 50,
  fixed_secs: 5,
  step_secs: 1,
  ingest_secs: 3,
  replay_counts: list(process.env.BENCH_REPLAY, ['10000', '100000']).map(Number),
  limits: LIMITS,
  scenarios: only,
};

// DO and D1 state live on tmpfs when there is one: the benchmark measures the code and the
// runtime, not this machine's disk (local fsyncs stalled rooms for hundreds of ms).
const stateRoot = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'coordinator-bench-'));
const jobDir = path.join(stateRoot, 'jobs');
fs.mkdirSync(jobDir);

const coordinatorModules = [
  { type: 'ESModule', path: path.join(COORDINATOR_DIR, 'build', 'index.js') },
  { type: 'CompiledWasm', path: path.join(COORDINATOR_DIR, 'build', 'index_bg.wasm') },
];
const floorModules = [{ type: 'ESModule', path: path.join(BENCH, 'floor', 'index.js') }];
const coordinatorBindings = {
  // Secrets of at least 32 bytes: the Worker refuses shorter ones.
  ADMIN_KEY: `adm_bench_${randomBytes(24).toString('base64url')}`,
  TOKEN_SECRET: randomBytes(32).toString('base64url'),
  // Tokens made before the cold-start restarts must still be valid after them.
  PARTICIPANT_TOKEN_TTL_MINUTES: '120',
  LIMITS: JSON.stringify(LIMITS),
};

const coordinator = new Runtime({
  name: 'coordinator',
  configPath: path.join(COORDINATOR_DIR, 'wrangler.toml'),
  modules: coordinatorModules,
  bindings: coordinatorBindings,
  persistDir: path.join(stateRoot, 'coordinator'),
});
const floor = new Runtime({
  name: 'floor',
  configPath: path.join(BENCH, 'floor', 'wrangler.toml'),
  modules: floorModules,
  persistDir: path.join(stateRoot, 'floor'),
});

async function cleanup() {
  await Promise.allSettled([coordinator.stop(), floor.stop()]);
  fs.rmSync(stateRoot, { recursive: true, force: true });
}
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    cleanup().finally(() => process.exit(130));
  });
}

/** `path (commit)` of the Worker under test, when it is a git checkout. */
function describeCoordinator() {
  const where = COORDINATOR_DIR === ROOT ? 'this checkout' : COORDINATOR_DIR;
  const commit = spawnSync('git', ['-C', COORDINATOR_DIR, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  return commit.status === 0 ? `${where} at ${commit.stdout.trim()}` : where;
}

function machine() {
  const cpus = os.cpus();
  const versions = {};
  for (const name of ['wrangler', 'miniflare', 'workerd']) {
    try {
      versions[name] = JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version;
    } catch {
      versions[name] = null;
    }
  }
  return { cores: cpus.length, cpu: cpus[0]?.model, memory_gib: Math.round(os.totalmem() / 2 ** 30), node: process.version, ...versions };
}

async function main() {
  const results = { date: new Date().toISOString(), machine: machine(), config, coordinator: describeCoordinator(), load_before: os.loadavg() };
  await coordinator.start();
  await coordinator.migrateD1('DB', path.join(COORDINATOR_DIR, 'migrations'));
  await floor.start();
  log(`coordinator workerd pid ${coordinator.pid} at ${coordinator.base}; floor workerd pid ${floor.pid} at ${floor.base}`);
  log(`state under ${stateRoot}; machine load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);

  const ctx = {
    coordinator,
    floor,
    api: new Coordinator(coordinator.base, coordinatorBindings.ADMIN_KEY),
    loadgen: loadgenRunner(path.join(BENCH, 'loadgen', 'target', 'release', 'loadgen'), jobDir),
    log,
    runs: config.runs,
    participants: config.participants,
    fixedRate: config.fixed_rate,
    fixedSecs: config.fixed_secs,
    stepSecs: config.step_secs,
    ingestSecs: config.ingest_secs,
    replayCounts: config.replay_counts,
    stamp: Date.now().toString(36),
    stateRoot,
    coordinatorConfig: path.join(COORDINATOR_DIR, 'wrangler.toml'),
    coordinatorModules,
    coordinatorBindings,
    floorModules,
    migrationsDir: path.join(COORDINATOR_DIR, 'migrations'),
  };
  const scenarios = { fanout, ingest, replay, cold, warm };
  results.seconds = {};
  // How busy the whole machine was during each scenario (the benchmark and everyone else):
  // with 2 cores shared, other people's builds show up here and in the spreads.
  results.machine_busy_pct = {};
  for (const name of only) {
    const t = performance.now();
    const ticks = machineTicks();
    log(`scenario ${name}`);
    results[name] = await scenarios[name](ctx);
    const now = machineTicks();
    results.machine_busy_pct[name] = Math.round(((now.busy - ticks.busy) / (now.total - ticks.total)) * 1000) / 10;
    results.seconds[name] = Math.round((performance.now() - t) / 100) / 10;
    log(`scenario ${name} took ${results.seconds[name]} s; machine ${results.machine_busy_pct[name]} % busy`);
  }
  results.load_after = os.loadavg();
  results.seconds.total = Math.round((performance.now() - started) / 1000);

  const text = renderText(results);
  const header = [
    `coordinator benchmark, ${results.date}; the Worker of ${results.coordinator}`,
    `${results.machine.cores} cores (${results.machine.cpu}), node ${results.machine.node}, workerd ${results.machine.workerd} via miniflare ${results.machine.miniflare}`,
    `load average before ${results.load_before.map((x) => x.toFixed(1)).join(' ')}, after ${results.load_after.map((x) => x.toFixed(1)).join(' ')}; ${config.runs} runs per figure: median (min–max)`,
    `machine busy (all ${results.machine.cores} cores, every process) per scenario: ${Object.entries(results.machine_busy_pct).map(([k, v]) => `${k} ${v} %`).join(', ')}`,
    `limits raised for the benchmark: ${JSON.stringify(LIMITS)}`,
  ].join('\n');
  process.stdout.write(`\n${header}\n\n${text}\n\nbench took ${results.seconds.total} s\n`);

  const dir = path.join(BENCH, 'results');
  fs.mkdirSync(dir, { recursive: true });
  const name = `bench-${results.date.replace(/[:.]/g, '-')}`;
  fs.writeFileSync(path.join(dir, `${name}.json`), `${JSON.stringify(results, null, 2)}\n`);
  fs.writeFileSync(path.join(dir, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  fs.writeFileSync(path.join(dir, 'latest.md'), `${header.split('\n').map((l) => `${l}  `).join('\n')}\n\n${renderMarkdown(results)}\n`);
  log(`wrote bench/results/${name}.json (and latest.json, latest.md)`);
}

try {
  await main();
} finally {
  await cleanup();
}
