// Scenarios 1 and 2: fan-out latency at a fixed rate, and saturation throughput.
//
// For every N, each run gets a room of its own (a new session with N members for the
// coordinator, a new room name for the floor) so no run inherits another's queue or table.
// Runs alternate between the two (coordinator, floor, coordinator, …) so that both see the
// same machine when others use it too. The floor is sent frames padded to the size of the
// coordinator's `message` event, so both fan out the same bytes.

import { spreadOf } from '../lib/stats.mjs';

export async function fanout(ctx) {
  const out = [];
  for (const n of ctx.participants) {
    const started = performance.now();
    const common = {
      kind: 'fanout',
      runs: 1,
      content_bytes: 100,
      fixed: { rate: ctx.fixedRate, secs: ctx.fixedSecs },
      // The flood that estimates capacity keeps more prompts in flight for more participants:
      // with 32 at N=256 the pipeline, not workerd, limits it.
      saturation: { p99_ms: 100, step_secs: ctx.stepSecs, probe_secs: 0.5, window: Math.max(32, n / 2) },
    };
    const runs = { coordinator: [], floor: [] };
    let eventBytes = 0;
    let setupMs = 0;
    for (let run = 0; run < ctx.runs; run += 1) {
      const setupStarted = performance.now();
      const session = await ctx.api.session(n, `fan-out ${n} #${run + 1}`);
      setupMs += performance.now() - setupStarted;
      const coordinator = await ctx.loadgen({
        ...common,
        subject: 'coordinator',
        server_pid: ctx.coordinator.pid,
        rooms: [session.urls],
      });
      eventBytes = coordinator.event_bytes || eventBytes;
      runs.coordinator.push(coordinator.runs[0]);
      const room = `${ctx.floor.wsBase}/rooms/fanout-${n}-${run}-${ctx.stamp}/ws`;
      const floor = await ctx.loadgen({
        ...common,
        subject: 'floor',
        server_pid: ctx.floor.pid,
        pad_to: eventBytes,
        rooms: [Array.from({ length: n }, () => room)],
      });
      runs.floor.push(floor.runs[0]);
    }
    ctx.log(`fan-out N=${n}: sessions set up in ${(setupMs / 1000).toFixed(1)} s (not measured)`);
    out.push({
      participants: n,
      event_bytes: eventBytes,
      coordinator: summarize(runs.coordinator),
      floor: summarize(runs.floor),
      seconds: (performance.now() - started) / 1000,
    });
  }
  return out;
}

function summarize(runs) {
  const best = (r) => r.saturation?.best;
  return {
    join_ms: spreadOf(runs, (r) => r.join_ms),
    fixed: {
      p50_ms: spreadOf(runs, (r) => r.fixed.latency.p50_ms),
      p99_ms: spreadOf(runs, (r) => r.fixed.latency.p99_ms),
      max_ms: spreadOf(runs, (r) => r.fixed.latency.max_ms),
      not_delivered: runs.reduce((sum, r) => sum + r.fixed.not_delivered, 0),
      loadgen_cpu_pct: spreadOf(runs, (r) => r.fixed.cpu.loadgen_pct),
      server_cpu_pct: spreadOf(runs, (r) => r.fixed.cpu.server_pct),
      cpu_us_per_delivery: spreadOf(runs, (r) => (r.fixed.cpu.server_cpu_s * 1e6) / r.fixed.deliveries),
    },
    saturation: {
      prompts_per_s: spreadOf(runs, (r) => best(r)?.prompts_per_s ?? 0),
      deliveries_per_s: spreadOf(runs, (r) => best(r)?.deliveries_per_s ?? 0),
      p99_ms: spreadOf(runs, (r) => best(r)?.latency.p99_ms),
      loadgen_cpu_pct: spreadOf(runs, (r) => best(r)?.cpu.loadgen_pct),
      server_cpu_pct: spreadOf(runs, (r) => best(r)?.cpu.server_pct),
      flood_deliveries_per_s: spreadOf(runs, (r) => r.saturation.probe.deliveries_per_s),
      flood_loadgen_cpu_pct: spreadOf(runs, (r) => r.saturation.probe.cpu.loadgen_pct),
      flood_server_cpu_pct: spreadOf(runs, (r) => r.saturation.probe.cpu.server_pct),
      cpu_us_per_delivery: spreadOf(runs, (r) => r.saturation.server_cpu_us_per_delivery),
    },
    errors: runs.map((r) => r.first_error).filter(Boolean),
    raw: runs,
  };
}
