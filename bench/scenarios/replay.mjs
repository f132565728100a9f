// Scenario 4: replay of 10,000 and 100,000 missed events to a reconnecting client.
// One session (one room) of each is filled once with a little over 100,000 events; a client
// then reconnects with `since` set so that it missed the last 10,000, or all 100,000.
// Runs alternate between the coordinator and the floor.

import { spreadOf } from '../lib/stats.mjs';

export async function replay(ctx) {
  const counts = ctx.replayCounts;
  const target = Math.max(...counts) + 10;
  const session = await ctx.api.session(1, 'replay');
  const coordinatorJob = {
    kind: 'replay',
    subject: 'coordinator',
    server_pid: ctx.coordinator.pid,
    url: session.urls[0],
    counts,
    target,
    content_bytes: 100,
    window: 64,
  };
  const floorJob = {
    kind: 'replay',
    subject: 'floor',
    server_pid: ctx.floor.pid,
    url: `${ctx.floor.wsBase}/rooms/replay-${ctx.stamp}/ws`,
    counts,
    target,
    window: 64,
  };
  // Filling: the coordinator first, then the floor with frames of the coordinator's average
  // event size (measured on the first replay), so both replay the same bytes.
  const coordinatorFill = await ctx.loadgen({ ...coordinatorJob, fill: true, runs: 1, counts: [counts[0]] });
  floorJob.frame_bytes = Math.round(averageEventBytes(coordinatorFill));
  const floorFill = await ctx.loadgen({ ...floorJob, fill: true, runs: 0 });
  const runs = { coordinator: [], floor: [] };
  for (let run = 0; run < ctx.runs; run += 1) {
    runs.coordinator.push((await ctx.loadgen({ ...coordinatorJob, fill: false, runs: 1 })).replays);
    runs.floor.push((await ctx.loadgen({ ...floorJob, fill: false, runs: 1 })).replays);
  }
  return {
    counts,
    frame_bytes: floorJob.frame_bytes,
    coordinator: summarize(coordinatorFill.fill, runs.coordinator),
    floor: summarize(floorFill.fill, runs.floor),
  };
}

function averageEventBytes(result) {
  const first = result.replays[0].runs[0];
  return first.bytes / first.events;
}

/** `perRun[i]` is run i's list of {count, runs: [one result]}. */
function summarize(fill, perRun) {
  return {
    fill,
    replays: perRun[0].map(({ count }, i) => {
      const runs = perRun.map((replays) => replays[i].runs[0]);
      return {
        count,
        total_ms: spreadOf(runs, (r) => r.total_ms),
        welcome_ms: spreadOf(runs, (r) => r.welcome_ms),
        events_per_s: spreadOf(runs, (r) => r.events_per_s),
        bytes_per_event: runs[0].bytes / runs[0].events,
        loadgen_cpu_pct: spreadOf(runs, (r) => r.cpu.loadgen_pct),
        server_cpu_pct: spreadOf(runs, (r) => r.cpu.server_pct),
        cpu_us_per_event: spreadOf(runs, (r) => (r.cpu.server_cpu_s * 1e6) / r.events),
        raw: runs,
      };
    }),
  };
}
