// `npm run soak -- --minutes N`: 64 participants in one session, one of them sending 50
// prompts/s for N minutes, every participant reading every `message` event; workerd's memory
// sampled every 10 s and printed as a table at the end.
//
// Beside the RSS of the workerd process, each sample asks the isolate through the inspector
// for its JavaScript heap (`Runtime.getHeapUsage`) and the size of every WebAssembly memory
// in it (`Runtime.queryObjects` on `WebAssembly.Memory.prototype`): the Worker's Rust heap is
// wasm linear memory, which grows and never shrinks. After the load, the soak waits idle,
// asks V8 to collect garbage and samples again, so what stays can be told from what was
// only waiting for a collection. `--snapshot` also writes a V8 heap snapshot at the end
// (bench/results/soak-<date>.heapsnapshot, opens in Chrome DevTools) and its largest
// constructors. Options: --minutes (10), --participants (64), --rate (50), --sample-seconds (10),
// --idle-seconds (60), --sessions (1: that many sessions one after the other), --wrangler (under
// `wrangler dev` as `npm run dev` runs it; RSS only).
//
// Runs like `npm run bench`: the built Worker in workerd through Miniflare's API, state on
// tmpfs, the Rust load generator (bench/loadgen, job kind `soak`) as the clients.

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { Coordinator } from './lib/api.mjs';
import { loadgenRunner } from './lib/loadgen.mjs';
import { Runtime, cpuSeconds, freePort, rssBytes } from './lib/runtime.mjs';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH, '..');
const COORDINATOR_DIR = path.resolve(process.env.COORDINATOR_DIR || ROOT);
const RESULTS = path.join(BENCH, 'results');
const MIB = 2 ** 20;
const log = (text) => process.stderr.write(`soak: ${text}\n`);

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    participants: { type: 'string', default: '64' },
    rate: { type: 'string', default: '50' },
    'sample-seconds': { type: 'string', default: '10' },
    'idle-seconds': { type: 'string', default: '60' },
    snapshot: { type: 'boolean', default: false },
    wrangler: { type: 'boolean', default: false },
    sessions: { type: 'string', default: '1' },
  },
});
const minutes = Number(args.minutes);
const participants = Number(args.participants);
const rate = Number(args.rate);
const sampleSeconds = Number(args['sample-seconds']);
const idleSeconds = Number(args['idle-seconds']);
const sessions = Number(args.sessions);
for (const [name, value] of Object.entries({ minutes, participants, rate, sampleSeconds, idleSeconds, sessions })) {
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
}

// Neither rate limits nor the queue bound refuse a prompt of the soak: with no sandbox
// provider every prompt stays queued, so the queue holds all of them by the end.
const LIMITS = { queue_len: 100_000_000, prompts_per_window: 1_000_000_000, frames_per_window: 1_000_000_000 };

/** The Worker's workerd process below this one (wrangler dev's, two levels down). */
function descendantWorkerd() {
  const parentOf = new Map();
  const workerds = [];
  for (const entry of fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      parentOf.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
      if (comm === 'workerd') workerds.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  const below = (pid) => {
    for (let p = parentOf.get(pid); p; p = parentOf.get(p)) if (p === process.pid) return true;
    return false;
  };
  const mine = workerds.filter(below);
  if (mine.length === 0) throw new Error('no workerd below this process');
  // wrangler dev runs a second, small workerd for its own proxy; the Worker's is the larger.
  const sizes = mine.map((pid) => [pid, rssBytes(pid)]).sort((a, b) => b[1] - a[1]);
  if (sizes.length > 1) log(`workerd processes (pid, RSS MiB): ${sizes.map(([pid, rss]) => `${pid} ${fmt(rss)}`).join(', ')}; sampling ${sizes[0][0]}`);
  return sizes[0][0];
}

/** A minimal Chrome DevTools Protocol client. */
async function devtools(url) {
  const ws = new WebSocket(url, { maxPayload: 2 ** 31 });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  let id = 0;
  const pending = new Map();
  const listeners = new Map();
  ws.on('message', (data) => {
    const message = JSON.parse(data.toString());
    if (message.id && pending.has(message.id)) {
      const { resolve, reject } = pending.get(message.id);
      pending.delete(message.id);
      if (message.error) reject(new Error(`${JSON.stringify(message.error)}`));
      else resolve(message.result);
    } else if (message.method) {
      listeners.get(message.method)?.(message.params);
    }
  });
  return {
    send(method, params = {}, timeoutMs = 120_000) {
      id += 1;
      const sent = id;
      ws.send(JSON.stringify({ id, method, params }));
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(sent);
          reject(new Error(`the inspector did not answer ${method} within ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(sent, {
          resolve: (value) => (clearTimeout(timer), resolve(value)),
          reject: (error) => (clearTimeout(timer), reject(error)),
        });
      });
    },
    on: (method, listener) => listeners.set(method, listener),
    close: () => ws.close(),
  };
}

/** The isolate's JavaScript heap and its WebAssembly memories, in bytes. */
async function isolateMemory(cdp) {
  const heap = await cdp.send('Runtime.getHeapUsage');
  const proto = await cdp.send('Runtime.evaluate', { expression: 'WebAssembly.Memory.prototype', contextId: cdp.contextId });
  const { objects } = await cdp.send('Runtime.queryObjects', { prototypeObjectId: proto.result.objectId });
  const sizes = await cdp.send('Runtime.callFunctionOn', {
    objectId: objects.objectId,
    functionDeclaration: 'function () { return this.map((memory) => memory.buffer.byteLength); }',
    returnByValue: true,
  });
  await cdp.send('Runtime.releaseObject', { objectId: objects.objectId });
  await cdp.send('Runtime.releaseObject', { objectId: proto.result.objectId });
  const wasm = sizes.result.value ?? [];
  return { jsUsed: heap.usedSize, jsTotal: heap.totalSize, wasm: wasm.reduce((a, b) => a + b, 0), wasmMemories: wasm.length };
}

/** A heap snapshot to a file, and its largest constructors by self size. */
async function heapSnapshot(cdp, file) {
  const chunks = [];
  cdp.on('HeapProfiler.addHeapSnapshotChunk', ({ chunk }) => chunks.push(chunk));
  await cdp.send('HeapProfiler.enable');
  await cdp.send('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
  const text = chunks.join('');
  fs.writeFileSync(file, text);
  const snapshot = JSON.parse(text);
  const fields = snapshot.snapshot.meta.node_fields;
  const types = snapshot.snapshot.meta.node_types[0];
  const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f));
  const byName = new Map();
  for (let i = 0; i < snapshot.nodes.length; i += fields.length) {
    const type = types[snapshot.nodes[i + typeAt]];
    const name = type === 'object' || type === 'native' ? snapshot.strings[snapshot.nodes[i + nameAt]] : `(${type})`;
    const entry = byName.get(name) ?? { count: 0, bytes: 0 };
    entry.count += 1;
    entry.bytes += snapshot.nodes[i + sizeAt];
    byName.set(name, entry);
  }
  return [...byName.entries()].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, 12);
}

const fmt = (bytes) => (Number.isFinite(bytes) ? (bytes / MIB).toFixed(1) : '-');

function table(rows) {
  const lines = [
    '| minute | prompts sent | delivered to all 64 | RSS MiB | JS heap used MiB | wasm memory MiB | workerd CPU % |',
    '|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    lines.push(`| ${r.label} | ${r.sent} | ${r.delivered} | ${fmt(r.rss)} | ${fmt(r.jsUsed)} | ${fmt(r.wasm)} | ${r.cpuPct ?? ''} |`);
  }
  return lines.join('\n').replace('all 64', `all ${participants}`);
}

async function main() {
  const stateRoot = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'coordinator-soak-'));
  const jobDir = path.join(stateRoot, 'jobs');
  fs.mkdirSync(jobDir);
  // Secrets of at least 32 bytes: the Worker refuses shorter ones.
  const adminKey = `adm_soak_${randomBytes(24).toString('base64url')}`;
  const runtime = new Runtime({
    name: 'coordinator',
    configPath: path.join(COORDINATOR_DIR, 'wrangler.toml'),
    modules: [
      { type: 'ESModule', path: path.join(COORDINATOR_DIR, 'build', 'index.js') },
      { type: 'CompiledWasm', path: path.join(COORDINATOR_DIR, 'build', 'index_bg.wasm') },
    ],
    bindings: {
      ADMIN_KEY: adminKey,
      TOKEN_SECRET: randomBytes(32).toString('base64url'),
      // The sockets must outlive the soak, whatever a token's expiry does to them.
      PARTICIPANT_TOKEN_TTL_MINUTES: String(Math.min(1440, Math.ceil(minutes) + 30)),
      LIMITS: JSON.stringify(LIMITS),
    },
    persistDir: path.join(stateRoot, 'state'),
    inspectorPort: await freePort(),
  });
  const cleanup = async () => {
    await runtime.stop().catch(() => {});
    fs.rmSync(stateRoot, { recursive: true, force: true });
  };
  for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => cleanup().finally(() => process.exit(130)));

  const samples = [];
  let devServer = null;
  try {
    let cdp = null;
    if (args.wrangler) {
      // As `npm run dev` runs it: wrangler dev, its proxy in front of workerd (tests/support/server.mjs).
      const { startServer } = await import('../tests/support/server.mjs');
      devServer = await startServer({ vars: { PARTICIPANT_TOKEN_TTL_MINUTES: runtime.bindings.PARTICIPANT_TOKEN_TTL_MINUTES, LIMITS: JSON.stringify(LIMITS) } });
      Object.assign(runtime, { pid: descendantWorkerd(), url: new URL(devServer.url) });
      runtime.stop = () => devServer.stop();
      runtime.doDatabases = () => [];
    } else {
      await runtime.start();
      await runtime.migrateD1('DB', path.join(COORDINATOR_DIR, 'migrations'));
    }
    log(`workerd pid ${runtime.pid} at ${runtime.base}${args.wrangler ? ' (wrangler dev)' : `; state under ${stateRoot}`}`);
    const api = new Coordinator(runtime.base, devServer?.adminKey ?? adminKey);
    await (await fetch(runtime.base)).arrayBuffer();
    if (!args.wrangler) {
      cdp = await devtools(`ws://127.0.0.1:${runtime.inspectorPort}/core:user:coordinator`);
      const context = new Promise((resolve) => cdp.on('Runtime.executionContextCreated', ({ context }) => resolve(context.id)));
      await cdp.send('Runtime.enable');
      cdp.contextId = await context;
    }
    const noIsolate = { jsUsed: NaN, jsTotal: NaN, wasm: NaN, wasmMemories: NaN };
    let lastCpu = { at: performance.now(), seconds: cpuSeconds(runtime.pid) };
    const sample = async (label, progress) => {
      const now = { at: performance.now(), seconds: cpuSeconds(runtime.pid) };
      const cpuPct = ((now.seconds - lastCpu.seconds) / ((now.at - lastCpu.at) / 1000)) * 100;
      lastCpu = now;
      const row = {
        label,
        elapsed_s: progress?.elapsed_s ?? null,
        sent: progress?.sent ?? samples.at(-1)?.sent ?? 0,
        delivered: progress?.delivered_to_all ?? samples.at(-1)?.delivered ?? 0,
        rss: rssBytes(runtime.pid),
        // On a machine this busy the inspector can fall minutes behind: the row keeps its RSS.
        ...(cdp
          ? await isolateMemory(cdp).catch((error) => {
              log(`${label}: no heap figures (${error.message})`);
              return noIsolate;
            })
          : noIsolate),
        cpuPct: Number.isFinite(cpuPct) ? cpuPct.toFixed(0) : null,
      };
      samples.push(row);
      return row;
    };
    const loadgen = loadgenRunner(path.join(BENCH, 'loadgen', 'target', 'release', 'loadgen'), jobDir);
    // With --sessions K, K sessions one after the other (as the benchmark's runs do), each with
    // its own members and sockets: what a finished session leaves behind shows between them.
    const perMinute = [];
    const results = [];
    for (let k = 1; k <= sessions; k += 1) {
      const tag = sessions > 1 ? `session ${k}: ` : '';
      const session = await api.session(participants, `soak ${k}`);
      const first = samples.length;
      await sample(`${tag}before joining`, null);
      log(`${tag}${participants} participants in ${session.id}; ${rate} prompts/s for ${minutes} min, a sample every ${sampleSeconds} s`);
      const result = await loadgen(
        { kind: 'soak', server_pid: runtime.pid, urls: session.urls, rate, secs: minutes * 60, sample_secs: sampleSeconds, content_bytes: 100 },
        {
          onCheckpoint: async (progress) => {
            const minute = progress.elapsed_s / 60;
            const row = await sample(progress.elapsed_s === 0 ? `${tag}joined` : minute.toFixed(2), progress);
            log(`${tag}${minute.toFixed(1)} min: ${row.sent} sent, RSS ${fmt(row.rss)} MiB, JS ${fmt(row.jsUsed)} MiB, wasm ${fmt(row.wasm)} MiB`);
          },
        },
      );
      log(`${tag}load done: ${result.sent} sent, ${result.delivered_to_all} delivered to all, ${result.errors} errors`);
      results.push(result);
      // One row a minute (the last sample of each minute).
      const load = samples.slice(first).filter((row) => row.elapsed_s !== null);
      perMinute.push(samples[first], load[0]);
      for (let m = 1; m <= Math.ceil(minutes); m += 1) {
        const last = load.filter((row) => row.elapsed_s <= m * 60 + 1).at(-1);
        if (last && last !== perMinute.at(-1)) perMinute.push({ ...last, label: `${tag}${m}` });
      }
      perMinute.push(await sample(`${tag}after the load (sockets closed)`, null));
    }
    const result = results.reduce((sum, r) => ({
      sent: sum.sent + r.sent,
      delivered_to_all: sum.delivered_to_all + r.delivered_to_all,
      errors: sum.errors + r.errors,
    }));

    await new Promise((resolve) => setTimeout(resolve, idleSeconds * 1000));
    await sample(`idle ${idleSeconds} s`, null);
    // workerd's inspector does not answer HeapProfiler.collectGarbage; a heap snapshot
    // collects garbage first, so it stands in for it.
    fs.mkdirSync(RESULTS, { recursive: true });
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const snapshotFile = path.join(args.snapshot ? RESULTS : stateRoot, `soak-${stamp}.heapsnapshot`);
    const constructors = cdp ? await heapSnapshot(cdp, snapshotFile) : null;
    if (cdp) await sample('after GC (heap snapshot)', null);
    cdp?.close();

    const databaseBytes = runtime.doDatabases().reduce((sum, file) => sum + fs.statSync(file).size, 0);
    const load = samples.filter((row) => row.elapsed_s !== null);
    const after = samples.slice(samples.indexOf(perMinute.at(-1)) + 1);
    const text = [
      `soak: ${sessions > 1 ? `${sessions} sessions one after the other, each ` : ''}${participants} participants, ${rate} prompts/s for ${minutes} min, ${result.sent} prompts (${result.delivered_to_all} reached everyone, ${result.errors} error frames)`,
      `workerd RSS${args.wrangler ? ' (under wrangler dev)' : ''}: ${fmt(samples[0].rss)} MiB before the sockets join, ${fmt(load[0].rss)} MiB after, peak ${fmt(Math.max(...load.map((row) => row.rss)))} MiB under load, ${fmt(load.at(-1).rss)} MiB at its end, ${fmt(after.find((row) => row.label.startsWith('idle')).rss)} MiB after ${idleSeconds} s idle`,
      `session databases: ${fmt(databaseBytes)} MiB on tmpfs (outside workerd's RSS); the "after GC" row includes the heap snapshot's own cost`,
      '',
      table([...perMinute, ...after]),
    ];
    if (args.snapshot && constructors) {
      text.push('', `largest constructors in the JS heap at the end (self size; snapshot in ${path.relative(ROOT, snapshotFile)}):`);
      for (const [name, { count, bytes }] of constructors) text.push(`  ${fmt(bytes).padStart(8)} MiB  ${String(count).padStart(8)}  ${name}`);
    }
    console.log(text.join('\n'));
    fs.writeFileSync(path.join(RESULTS, `soak-${stamp}.json`), JSON.stringify({ minutes, participants, rate, sessions, results, samples, constructors }, null, 1));
    fs.writeFileSync(path.join(RESULTS, 'soak-latest.md'), `${text.join('\n')}\n`);
  } finally {
    await cleanup();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
