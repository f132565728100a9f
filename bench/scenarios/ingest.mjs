// Scenario 3: agent streaming ingest. A fake bridge sends `token` frames as fast as the room
// takes them while 16 participants watch.
//
// The coordinator needs its sandbox path for this, so it gets a runtime of its own started
// with PROVIDER=local and PROVIDER_URL pointing at the load generator's fake provider (the
// other scenarios' runtime has no provider, so their queued prompts never start anything).
// After every run the load generator stops at a checkpoint and the orchestrator reads the
// room's SQLite file: bytes stored per token frame is the growth of the whole database
// (page_count × page_size) divided by the frames sent, and the JSON bytes of the stored
// token events per frame is given beside it.

import { DatabaseSync } from 'node:sqlite';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Coordinator } from '../lib/api.mjs';
import { Runtime } from '../lib/runtime.mjs';
import { spread, spreadOf } from '../lib/stats.mjs';

const WATCHERS = 16;

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Size and stored token JSON of a room's database. */
function measure(file) {
  const db = new DatabaseSync(file, { readOnly: true });
  try {
    const pages = db.prepare('PRAGMA page_count').get().page_count;
    const pageSize = db.prepare('PRAGMA page_size').get().page_size;
    const columns = db.prepare("SELECT name FROM pragma_table_info('events')").all().map((c) => c.name);
    const where = columns.includes('type') ? "WHERE type = 'token'" : '';
    const tokens = db.prepare(`SELECT COUNT(*) AS n, COALESCE(SUM(LENGTH(json)), 0) AS bytes FROM events ${where}`).get();
    return { bytes: pages * pageSize, token_rows: tokens.n, token_json_bytes: tokens.bytes };
  } finally {
    db.close();
  }
}

async function runSubject(ctx, runtime, job) {
  // The room may not exist yet (the floor's): it is the database written most recently at the
  // first checkpoint, and a database that did not exist before started empty.
  const known = new Map(runtime.doDatabases().map((file) => [file, measure(file)]));
  let file = null;
  let before = null;
  const perRun = [];
  const result = await ctx.loadgen(job, {
    onCheckpoint: async ({ frames }) => {
      if (!file) {
        file = runtime.doDatabases()[0];
        before = known.get(file) ?? { bytes: 0, token_rows: 0, token_json_bytes: 0 };
      }
      const after = measure(file);
      const grown = {
        frames,
        db_bytes_per_frame: (after.bytes - before.bytes) / frames,
        json_bytes_per_frame: (after.token_json_bytes - before.token_json_bytes) / frames,
        frames_per_row: frames / Math.max(1, after.token_rows - before.token_rows),
      };
      perRun.push(grown);
      before = after;
      return grown;
    },
  });
  return { result, perRun };
}

export async function ingest(ctx) {
  const deltaBytes = 16;
  // Up to 4,096 frames (64 KiB of deltas) beyond what the slowest watcher has read: well
  // above what a room may hold back to coalesce (the coordinator stores a batch at 16 KiB or
  // 40 ms), so the room's speed, not the window, sets the pace.
  const common = { kind: 'ingest', runs: ctx.runs, secs: ctx.ingestSecs, delta_bytes: deltaBytes, window: 4096 };

  // The coordinator, on a runtime of its own with the local provider pointing at the loadgen.
  const providerPort = await freePort();
  const persistDir = fs.mkdtempSync(path.join(ctx.stateRoot, 'ingest-'));
  const runtime = new Runtime({
    name: 'coordinator',
    configPath: ctx.coordinatorConfig,
    modules: ctx.coordinatorModules,
    bindings: {
      ...ctx.coordinatorBindings,
      // The local provider runs only in development (wrangler.toml says production).
      ENV: 'development',
      PROVIDER: 'local',
      PROVIDER_URL: `http://127.0.0.1:${providerPort}`,
      PROVIDER_SECRET: 'bench-provider-secret-of-at-least-32-bytes',
    },
    persistDir,
  });
  let coordinator;
  try {
    await runtime.start();
    await runtime.migrateD1('DB', ctx.migrationsDir);
    const api = new Coordinator(runtime.base, ctx.coordinatorBindings.ADMIN_KEY);
    const session = await api.session(WATCHERS, 'ingest');
    coordinator = await runSubject(ctx, runtime, {
      ...common,
      subject: 'coordinator',
      server_pid: runtime.pid,
      watchers: session.urls,
      provider_port: providerPort,
      ws_base: runtime.wsBase,
    });
  } finally {
    await runtime.stop();
    fs.rmSync(persistDir, { recursive: true, force: true });
  }

  const room = `${ctx.floor.wsBase}/rooms/ingest-${ctx.stamp}/ws`;
  const floor = await runSubject(ctx, ctx.floor, {
    ...common,
    subject: 'floor',
    server_pid: ctx.floor.pid,
    watchers: Array.from({ length: WATCHERS }, () => room),
    bridge_url: `${room}?role=bridge`,
  });
  return { watchers: WATCHERS, delta_bytes: deltaBytes, coordinator: summarize(coordinator), floor: summarize(floor) };
}

function summarize({ result, perRun }) {
  if (result.skipped) return { skipped: result.skipped };
  const runs = result.runs;
  return {
    frames_per_s: spreadOf(runs, (r) => r.frames_per_s),
    db_bytes_per_frame: spread(perRun.map((r) => r.db_bytes_per_frame)),
    json_bytes_per_frame: spread(perRun.map((r) => r.json_bytes_per_frame)),
    frames_per_event: spreadOf(runs, (r) => r.frames / Math.max(1, r.token_events)),
    rss_peak_mb: spreadOf(runs, (r) => r.rss_peak / 2 ** 20),
    loadgen_cpu_pct: spreadOf(runs, (r) => r.cpu.loadgen_pct),
    server_cpu_pct: spreadOf(runs, (r) => r.cpu.server_pct),
    cpu_us_per_frame: spreadOf(runs, (r) => (r.cpu.server_cpu_s * 1e6) / r.frames),
    all_delivered: runs.every((r) => r.all_delivered),
    raw: runs,
  };
}
