// `npm run bench -- --metrics` (or BENCH_ONLY=metrics): how long GET /v1/metrics takes over a
// large D1. Seeds prompts, sessions and pull requests straight into the built Worker's D1
// (in workerd through Miniflare, state on tmpfs), then times the endpoint over HTTP: the whole
// window, and one repository.
//
// Knobs:
//   BENCH_METRICS_PROMPTS=100000   prompt rows to seed
//   BENCH_METRICS_DAYS=30          days they spread over (ending now)
//   BENCH_METRICS_REPOS=8          repositories
//   BENCH_RUNS=5                   timed requests per query (median, min–max reported)
//   COORDINATOR_DIR=path           another checkout's built Worker

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DatabaseSync } from 'node:sqlite';
import { Runtime } from './lib/runtime.mjs';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH, '..');
const COORDINATOR_DIR = path.resolve(process.env.COORDINATOR_DIR || ROOT);
const PROMPTS = Number(process.env.BENCH_METRICS_PROMPTS ?? 100_000);
const DAYS = Number(process.env.BENCH_METRICS_DAYS ?? 30);
const REPOS = Number(process.env.BENCH_METRICS_REPOS ?? 8);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const DAY_MS = 86_400_000;
const log = (text) => process.stderr.write(`bench: ${text}\n`);

// A fixed seed, so two runs seed the same rows.
let seed = 42;
function random() {
  seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
  return seed / 2 ** 31;
}
const pick = (list) => list[Math.floor(random() * list.length)];
// The room's latency buckets (src/metrics.rs): the first bound 10^(b/20) at or above the value.
const bound = (b) => Math.round(10 ** (b / 20));
const bucket = (ms) => {
  for (let b = 0; b < 160; b++) if (ms <= bound(b)) return b;
  return 160;
};

const stateRoot = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'coordinator-bench-metrics-'));
// Secrets of at least 32 bytes: the Worker refuses shorter ones.
const adminKey = `adm_bench_${randomBytes(24).toString('base64url')}`;
const coordinator = new Runtime({
  name: 'coordinator',
  configPath: path.join(COORDINATOR_DIR, 'wrangler.toml'),
  modules: [
    { type: 'ESModule', path: path.join(COORDINATOR_DIR, 'build', 'index.js') },
    { type: 'CompiledWasm', path: path.join(COORDINATOR_DIR, 'build', 'index_bg.wasm') },
  ],
  bindings: { ADMIN_KEY: adminKey, TOKEN_SECRET: randomBytes(32).toString('base64url') },
  persistDir: path.join(stateRoot, 'coordinator'),
});

/** Inserts `rows` (arrays of values) into `table`, in one transaction. */
function insert(db, table, columns, rows) {
  const statement = db.prepare(`INSERT INTO ${table} (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`);
  db.exec('BEGIN');
  for (const row of rows) statement.run(...row);
  db.exec('COMMIT');
}

/** The D1 database file of the runtime's state (written while workerd is stopped). */
function d1File() {
  const root = path.join(stateRoot, 'coordinator', 'd1');
  const found = [];
  const walk = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.sqlite') && entry.name !== 'metadata.sqlite') found.push(full);
    }
  };
  walk(root);
  if (found.length !== 1) throw new Error(`expected one D1 database under ${root}, found ${found.length}`);
  return found[0];
}

function seedRows(db, now) {
  const repos = Array.from({ length: REPOS }, (_, i) => `acme/repo-${i}`);
  const users = Array.from({ length: 200 }, (_, i) => `usr_bench${i}`);
  const sources = ['web', 'web', 'web', 'extension', 'slack', 'api'];
  const start = now - DAYS * DAY_MS;
  insert(db, 'users', ['id', 'name', 'email', 'scopes', 'disabled', 'created_at'],
    users.map((id) => [id, id, `${id}@example.com`, '{"repos":["*"]}', 0, new Date(start).toISOString()]));
  const sessionCount = Math.max(1, Math.round(PROMPTS / 10));
  const sessions = Array.from({ length: sessionCount }, (_, i) => {
    const created = start + Math.floor(random() * (DAYS * DAY_MS - 3_600_000));
    return { id: `ses_${i.toString(16).padStart(32, '0')}`, repo: pick(repos), owner: pick(users), created, authors: new Set() };
  });
  const prompts = [];
  for (let i = 0; i < PROMPTS; i++) {
    const session = sessions[i % sessionCount];
    const author = random() < 0.7 ? session.owner : pick(users);
    session.authors.add(author);
    const queued = session.created + Math.floor(random() * 3_600_000);
    const started = Math.floor(200 + random() * 20_000);
    const firstToken = started + Math.floor(300 + random() * 5_000);
    prompts.push([`msg_bench${i}`, session.id, session.repo, author, pick(sources), random() < 0.9 ? 'completed' : 'failed',
      queued, started, firstToken, Math.floor(5_000 + random() * 300_000), random() < 0.3 ? 1 : random() < 0.5 ? 0 : null]);
  }
  insert(db, 'sessions', ['id', 'repo', 'branch', 'title', 'owner_id', 'status', 'created_at', 'updated_at', 'participants', 'prompt_authors'],
    sessions.map((s) => [s.id, s.repo, 'main', 'bench', s.owner, 'active', new Date(s.created).toISOString(), new Date(s.created).toISOString(), s.authors.size, s.authors.size]));
  insert(db, 'prompt_metrics', ['message_id', 'session_id', 'repo', 'author_id', 'source', 'status', 'queued_at', 'to_started_ms', 'to_first_token_ms', 'duration_ms', 'warm'], prompts);
  // The per-day tables the room's write keeps, counted the same way (src/index/metrics.rs).
  const daily = new Map();
  const authors = new Set();
  const latency = new Map();
  const add = (map, key) => map.set(key, (map.get(key) ?? 0) + 1);
  for (const [, , repo, author, , , queued, started, firstToken, , warm] of prompts) {
    const day = Math.floor(queued / DAY_MS);
    add(daily, `${day}|${repo}`);
    authors.add(`${day}|${repo}|${author}`);
    add(latency, `${day}|${repo}|to_started_ms|${warm ?? -1}|${bucket(started)}`);
    add(latency, `${day}|${repo}|to_first_token_ms|${warm ?? -1}|${bucket(firstToken)}`);
  }
  const split = (key) => key.split('|').map((part) => (/^-?\d+$/.test(part) ? Number(part) : part));
  insert(db, 'metrics_daily', ['day', 'repo', 'prompts'], [...daily].map(([key, n]) => [...split(key), n]));
  insert(db, 'metrics_authors', ['day', 'repo', 'author_id'], [...authors].map(split));
  insert(db, 'metrics_latency', ['day', 'repo', 'metric', 'warm', 'bucket', 'n'], [...latency].map(([key, n]) => [...split(key), n]));
  const pulls = sessions.filter(() => random() < 0.4).map((s, i) => {
    const merged = random() < 0.6 ? new Date(s.created + 3_600_000 + Math.floor(random() * 2 * DAY_MS)).toISOString() : null;
    return [s.repo, i + 1, s.id, `https://github.com/${s.repo}/pull/${i + 1}`, merged ? 'merged' : 'open', `agent/${s.id}`, 'main', s.owner, new Date(s.created + 1_800_000).toISOString(), merged];
  });
  insert(db, 'pull_requests', ['repo', 'number', 'session_id', 'url', 'state', 'head', 'base', 'opened_by', 'created_at', 'merged_at'], pulls);
  return { repos, sessions: sessionCount, pulls: pulls.length, latencyRows: latency.size, authorRows: authors.size };
}

async function time(url) {
  const figures = [];
  let answer = null;
  for (let i = 0; i < RUNS + 1; i++) {
    const began = performance.now();
    const res = await fetch(url, { headers: { authorization: `Bearer ${adminKey}` } });
    const text = await res.text();
    const ms = performance.now() - began;
    if (res.status !== 200) throw new Error(`GET ${url}: HTTP ${res.status} ${text.slice(0, 300)}`);
    answer = JSON.parse(text);
    if (i > 0) figures.push(ms); // the first request also warms the isolate up
  }
  figures.sort((a, b) => a - b);
  return { median: figures[Math.floor(figures.length / 2)], min: figures[0], max: figures.at(-1), answer };
}

async function main() {
  // Migrations through the runtime, then rows straight into its D1 file while it is stopped:
  // hundreds of thousands of rows through the D1 API would take far longer than the query.
  await coordinator.start();
  await coordinator.migrateD1('DB', path.join(COORDINATOR_DIR, 'migrations'));
  await coordinator.stop();
  const now = Date.now();
  const seedStarted = performance.now();
  const db = new DatabaseSync(d1File());
  const seeded = seedRows(db, now);
  db.exec('ANALYZE');
  db.close();
  await coordinator.start();
  log(`seeded ${PROMPTS} prompts, ${seeded.sessions} sessions and ${seeded.pulls} pull requests over ${DAYS} days ` +
    `(${seeded.latencyRows} histogram rows, ${seeded.authorRows} day-author rows) in ${((performance.now() - seedStarted) / 1000).toFixed(1)} s`);
  const day = (ms) => new Date(ms).toISOString().slice(0, 10);
  const window = `from=${day(now - (DAYS - 1) * DAY_MS)}&to=${day(now)}`;
  const rows = [];
  for (const [name, query] of [['all repositories', window], [`one repository (${seeded.repos[0]})`, `${window}&repo=${seeded.repos[0]}`]]) {
    const result = await time(`${coordinator.base}/v1/metrics?${query}`);
    const totals = result.answer.totals;
    rows.push({ query: name, prompts: totals.prompts, median_ms: result.median, min_ms: result.min, max_ms: result.max });
    log(`${name}: ${totals.prompts} prompts, ${totals.sessions} sessions, ${result.answer.days.length} days; ` +
      `median ${result.median.toFixed(0)} ms (min ${result.min.toFixed(0)}, max ${result.max.toFixed(0)}) over ${RUNS} requests`);
  }
  const table = [
    '| GET /v1/metrics | prompts in window | median | min | max |',
    '|---|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.query} | ${r.prompts} | ${r.median_ms.toFixed(0)} ms | ${r.min_ms.toFixed(0)} ms | ${r.max_ms.toFixed(0)} ms |`),
  ].join('\n');
  process.stdout.write(`${table}\n`);
  const results = path.join(BENCH, 'results');
  fs.mkdirSync(results, { recursive: true });
  fs.writeFileSync(path.join(results, 'metrics-latest.md'), `${table}\n`);
}

try {
  await main();
} finally {
  await coordinator.stop();
  fs.rmSync(stateRoot, { recursive: true, force: true });
}
