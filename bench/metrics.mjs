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

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
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

const stateRoot = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'coordinator-bench-metrics-'));
const adminKey = `adm_bench_${Date.now()}`;
const coordinator = new Runtime({
  name: 'coordinator',
  configPath: path.join(COORDINATOR_DIR, 'wrangler.toml'),
  modules: [
    { type: 'ESModule', path: path.join(COORDINATOR_DIR, 'build', 'index.js') },
    { type: 'CompiledWasm', path: path.join(COORDINATOR_DIR, 'build', 'index_bg.wasm') },
  ],
  bindings: { ADMIN_KEY: adminKey, TOKEN_SECRET: `bench-${process.pid}` },
  persistDir: path.join(stateRoot, 'coordinator'),
});

/** Inserts `rows` (arrays of values) into `table` in multi-row statements of `per` rows. */
async function insert(db, table, columns, rows, per = 10) {
  const statements = [];
  for (let i = 0; i < rows.length; i += per) {
    const chunk = rows.slice(i, i + per);
    const marks = chunk.map(() => `(${columns.map(() => '?').join(', ')})`).join(', ');
    statements.push(db.prepare(`INSERT INTO ${table} (${columns.join(', ')}) VALUES ${marks}`).bind(...chunk.flat()));
  }
  for (let i = 0; i < statements.length; i += 500) await db.batch(statements.slice(i, i + 500));
}

async function seedRows(db, now) {
  const repos = Array.from({ length: REPOS }, (_, i) => `acme/repo-${i}`);
  const users = Array.from({ length: 200 }, (_, i) => `usr_bench${i}`);
  const sources = ['web', 'web', 'web', 'extension', 'slack', 'api'];
  const start = now - DAYS * DAY_MS;
  await insert(db, 'users', ['id', 'name', 'email', 'scopes', 'disabled', 'created_at'],
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
  await insert(db, 'sessions', ['id', 'repo', 'branch', 'title', 'owner_id', 'status', 'created_at', 'updated_at', 'participants', 'prompt_authors'],
    sessions.map((s) => [s.id, s.repo, 'main', 'bench', s.owner, 'active', new Date(s.created).toISOString(), new Date(s.created).toISOString(), s.authors.size, s.authors.size]));
  await insert(db, 'prompt_metrics', ['message_id', 'session_id', 'repo', 'author_id', 'source', 'status', 'queued_at', 'to_started_ms', 'to_first_token_ms', 'duration_ms', 'warm'], prompts);
  const pulls = sessions.filter(() => random() < 0.4).map((s, i) => {
    const merged = random() < 0.6 ? new Date(s.created + 3_600_000 + Math.floor(random() * 2 * DAY_MS)).toISOString() : null;
    return [s.repo, i + 1, s.id, `https://github.com/${s.repo}/pull/${i + 1}`, merged ? 'merged' : 'open', `agent/${s.id}`, 'main', s.owner, new Date(s.created + 1_800_000).toISOString(), merged];
  });
  await insert(db, 'pull_requests', ['repo', 'number', 'session_id', 'url', 'state', 'head', 'base', 'opened_by', 'created_at', 'merged_at'], pulls);
  return { repos, sessions: sessionCount, pulls: pulls.length };
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
  await coordinator.start();
  await coordinator.migrateD1('DB', path.join(COORDINATOR_DIR, 'migrations'));
  const db = await coordinator.mf.getD1Database('DB');
  const now = Date.now();
  const seedStarted = performance.now();
  const seeded = await seedRows(db, now);
  log(`seeded ${PROMPTS} prompts, ${seeded.sessions} sessions and ${seeded.pulls} pull requests over ${DAYS} days in ${((performance.now() - seedStarted) / 1000).toFixed(1)} s`);
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
