// Scenario 5: cold start, and the size of what is deployed.
//
// Each run restarts the runtime (a new workerd process on the same persisted state), then
// opens sockets one after another and times each up to its `welcome`:
//   A        the first request the new process serves (isolate, Worker and room all new),
//   B, C, D  rooms not loaded yet, in a Worker that is (a fresh Durable Object),
//   A ×3     a room that is loaded (warm).
// The coordinator's sessions are created (and their rooms used once) before the restart;
// the floor's rooms are touched once before the restart too, so both load stored rooms.

import fs from 'node:fs';
import zlib from 'node:zlib';
import { median, spread } from '../lib/stats.mjs';

export async function cold(ctx) {
  const coordinatorUrls = [];
  for (let i = 0; i < 4; i += 1) coordinatorUrls.push((await ctx.api.session(1, `cold ${i}`)).urls[0]);
  const floorUrls = ['a', 'b', 'c', 'd'].map((name) => `${ctx.floor.wsBase}/rooms/cold-${name}-${ctx.stamp}/ws`);
  await ctx.loadgen({ kind: 'cold', urls: floorUrls });

  const subjects = { coordinator: { runtime: ctx.coordinator, urls: coordinatorUrls }, floor: { runtime: ctx.floor, urls: floorUrls } };
  const runs = { coordinator: [], floor: [] };
  // Runs alternate between the two, so both see the same machine.
  for (let run = 0; run < ctx.runs; run += 1) {
    for (const [name, { runtime, urls }] of Object.entries(subjects)) {
      await runtime.restart();
      // The URLs carry the old process's port: point them at the new one.
      const current = urls.map((u) => u.replace(/^ws:\/\/[^/]+/, runtime.wsBase));
      const order = [current[0], current[1], current[2], current[3], current[0], current[0], current[0]];
      const result = await ctx.loadgen({ kind: 'cold', urls: order, server_pid: runtime.pid });
      const welcome = result.connects.map((c) => c.welcome_ms);
      runs[name].push({
        start_ms: runtime.startMs,
        cold_ms: welcome[0],
        fresh_room_ms: median(welcome.slice(1, 4)),
        warm_ms: median(welcome.slice(4)),
        raw: result.connects,
      });
    }
  }
  const out = {};
  for (const [name, list] of Object.entries(runs)) {
    out[name] = {
      start_ms: spread(list.map((r) => r.start_ms)),
      cold_ms: spread(list.map((r) => r.cold_ms)),
      fresh_room_ms: spread(list.map((r) => r.fresh_room_ms)),
      warm_ms: spread(list.map((r) => r.warm_ms)),
      raw: list,
    };
  }
  // The coordinator's sessions and tokens were made against the old process: the API
  // object keeps working because the base URL is read again from the runtime.
  ctx.api.base = ctx.coordinator.base;
  out.size = {
    coordinator: sizeOf(ctx.coordinatorModules),
    floor: sizeOf(ctx.floorModules),
  };
  return out;
}

function sizeOf(modules) {
  let raw = 0;
  let gzip = 0;
  const files = {};
  for (const { path } of modules) {
    const bytes = fs.readFileSync(path);
    const zipped = zlib.gzipSync(bytes).length;
    files[path.split('/').at(-1)] = { raw: bytes.length, gzip: zipped };
    raw += bytes.length;
    gzip += zipped;
  }
  return { raw, gzip, files };
}
