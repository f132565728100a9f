// The table and the targets: every figure as coordinator, floor and their ratio, each the
// median of the runs with the spread (min–max) beside it, and the CPU of the load generator
// and of workerd over the measured window (100 % = one core busy).

const KIB = 1024;

function fmt(x) {
  if (x === undefined || x === null || Number.isNaN(x)) return '–';
  const a = Math.abs(x);
  if (a >= 10_000) return Math.round(x).toLocaleString('en-US');
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

function cell(s) {
  if (!s) return '–';
  if (typeof s === 'number') return fmt(s);
  if (s.min === s.max || !Number.isFinite(s.min)) return fmt(s.median);
  return `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`;
}

function ratio(c, f) {
  const a = typeof c === 'number' ? c : c?.median;
  const b = typeof f === 'number' ? f : f?.median;
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return '–';
  return `${(a / b).toFixed(2)}x`;
}

function cpu(lg, srv) {
  if (!lg || !srv || !Number.isFinite(lg.median)) return '';
  return `${fmt(lg.median)}/${fmt(srv.median)}`;
}

/** Rows of the table from the scenarios' results. */
export function rows(results) {
  const out = [];
  const add = (scenario, metric, n, c, f, cpuC = '', cpuF = '') =>
    out.push({ scenario, metric, n: n ?? '', coordinator: cell(c), floor: cell(f), ratio: ratio(c, f), cpu: cpuC || cpuF ? `${cpuC || '–'} | ${cpuF || '–'}` : '' });

  for (const r of results.fanout ?? []) {
    const c = r.coordinator.fixed;
    const f = r.floor.fixed;
    const cpuC = cpu(c.loadgen_cpu_pct, c.server_cpu_pct);
    const cpuF = cpu(f.loadgen_cpu_pct, f.server_cpu_pct);
    add('1 fan-out', `p50 ms @${results.config.fixed_rate}/s`, r.participants, c.p50_ms, f.p50_ms, cpuC, cpuF);
    add('1 fan-out', `p99 ms @${results.config.fixed_rate}/s`, r.participants, c.p99_ms, f.p99_ms);
    add('1 fan-out', `max ms @${results.config.fixed_rate}/s`, r.participants, c.max_ms, f.max_ms);
    add('1 fan-out', 'workerd CPU µs/delivery', r.participants, c.cpu_us_per_delivery, f.cpu_us_per_delivery);
  }
  for (const r of results.fanout ?? []) {
    const c = r.coordinator.saturation;
    const f = r.floor.saturation;
    add('2 saturation', 'prompts/s (p99<100ms)', r.participants, c.prompts_per_s, f.prompts_per_s,
      cpu(c.loadgen_cpu_pct, c.server_cpu_pct), cpu(f.loadgen_cpu_pct, f.server_cpu_pct));
    add('2 saturation', 'deliveries/s', r.participants, c.deliveries_per_s, f.deliveries_per_s);
    add('2 saturation', 'flood deliveries/s', r.participants, c.flood_deliveries_per_s, f.flood_deliveries_per_s,
      cpu(c.flood_loadgen_cpu_pct, c.flood_server_cpu_pct), cpu(f.flood_loadgen_cpu_pct, f.flood_server_cpu_pct));
    add('2 saturation', 'workerd CPU µs/delivery', r.participants, c.cpu_us_per_delivery, f.cpu_us_per_delivery);
  }
  for (const r of results.fanout ?? []) {
    add('  join', 'N sockets to welcome, ms', r.participants, r.coordinator.join_ms, r.floor.join_ms);
  }
  const ing = results.ingest;
  if (ing) {
    const c = ing.coordinator;
    const f = ing.floor;
    const skip = (metric, f) => out.push({ scenario: '3 ingest', metric, n: ing.watchers, coordinator: 'skipped*', floor: cell(f), ratio: '–', cpu: '' });
    if (c.skipped) {
      skip('token frames/s', f.frames_per_s);
      skip(`SQLite bytes/frame (delta ${ing.delta_bytes} B)`, f.db_bytes_per_frame);
      skip('event JSON bytes/frame', f.json_bytes_per_frame);
      skip('workerd RSS peak MiB', f.rss_peak_mb);
      skip('workerd CPU µs/frame', f.cpu_us_per_frame);
    } else {
      add('3 ingest', 'token frames/s', ing.watchers, c.frames_per_s, f.frames_per_s,
        cpu(c.loadgen_cpu_pct, c.server_cpu_pct), cpu(f.loadgen_cpu_pct, f.server_cpu_pct));
      add('3 ingest', `SQLite bytes/frame (delta ${ing.delta_bytes} B)`, ing.watchers, c.db_bytes_per_frame, f.db_bytes_per_frame);
      add('3 ingest', 'event JSON bytes/frame', ing.watchers, c.json_bytes_per_frame, f.json_bytes_per_frame);
      add('3 ingest', 'frames per token event', ing.watchers, c.frames_per_event, f.frames_per_event);
      add('3 ingest', 'workerd CPU µs/frame', ing.watchers, c.cpu_us_per_frame, f.cpu_us_per_frame);
      add('3 ingest', 'workerd RSS peak MiB', ing.watchers, c.rss_peak_mb, f.rss_peak_mb);
    }
  }
  for (const r of results.replay?.coordinator.replays ?? []) {
    const f = results.replay.floor.replays.find((x) => x.count === r.count);
    add('4 replay', `${r.count.toLocaleString('en-US')} events, ms`, '', r.total_ms, f.total_ms,
      cpu(r.loadgen_cpu_pct, r.server_cpu_pct), cpu(f.loadgen_cpu_pct, f.server_cpu_pct));
    add('4 replay', `${r.count.toLocaleString('en-US')} events, workerd CPU µs/event`, '', r.cpu_us_per_event, f.cpu_us_per_event);
  }
  if (results.replay) {
    const c = results.replay.coordinator.fill;
    const f = results.replay.floor.fill;
    add('4 replay', 'filling: events/s (once)', '', c.events_per_s, f.events_per_s);
  }
  // Scenario 6 compares a warm start with a cold one: the warm figure stands in the first
  // column, the cold one in the second (the floor plays no part).
  for (const [agent, w] of Object.entries(results.warm ?? {})) {
    if (w.skipped) {
      out.push({ scenario: '6 warm', metric: `${agent}: skipped* (${w.skipped})`, n: '', coordinator: '–', floor: '–', ratio: '–', cpu: '' });
      continue;
    }
    add('6 warm', `${agent}: send → prompt_started ms, warm | cold`, '', w.warm.started_ms, w.cold.started_ms);
    add('6 warm', `${agent}: client wall ms, warm | cold`, '', w.warm.wall_ms, w.cold.wall_ms);
  }
  const cold = results.cold;
  if (cold) {
    add('5 cold', 'runtime start ms', '', cold.coordinator.start_ms, cold.floor.start_ms);
    add('5 cold', 'first welcome, new process ms', '', cold.coordinator.cold_ms, cold.floor.cold_ms);
    add('5 cold', 'welcome, fresh room ms', '', cold.coordinator.fresh_room_ms, cold.floor.fresh_room_ms);
    add('5 cold', 'welcome, warm room ms', '', cold.coordinator.warm_ms, cold.floor.warm_ms);
    add('5 size', 'modules raw KiB', '', cold.size.coordinator.raw / KIB, cold.size.floor.raw / KIB);
    add('5 size', 'modules gzip KiB', '', cold.size.coordinator.gzip / KIB, cold.size.floor.gzip / KIB);
  }
  return out;
}

/** PASS/MISS of each target with its margin. */
export function targets(results) {
  const out = [];
  const check = (name, ok, detail) => out.push({ name, status: ok === null ? 'N/A' : ok ? 'PASS' : 'MISS', detail });
  const fan = (n) => (results.fanout ?? []).find((r) => r.participants === n);
  const f64 = fan(64);
  if (f64) {
    const r = f64.coordinator.fixed.p99_ms.median / f64.floor.fixed.p99_ms.median;
    check('fan-out p99 at 64 participants within 1.2x of the floor', r <= 1.2,
      `${fmt(f64.coordinator.fixed.p99_ms.median)} vs ${fmt(f64.floor.fixed.p99_ms.median)} ms = ${r.toFixed(2)}x (margin ${((1.2 - r) / 1.2 * 100).toFixed(0)} %)`);
  }
  for (const r of results.fanout ?? []) {
    const c = r.coordinator.saturation.deliveries_per_s.median;
    const f = r.floor.saturation.deliveries_per_s.median;
    const x = c / f;
    check(`saturation deliveries/s at N=${r.participants} at least 0.9x the floor`, x >= 0.9,
      `${fmt(c)} vs ${fmt(f)} = ${x.toFixed(2)}x (margin ${((x - 0.9) / 0.9 * 100).toFixed(0)} %)`);
  }
  const ing = results.ingest;
  if (ing) {
    if (ing.coordinator.skipped) {
      check('streaming ingest at least 5,000 token frames/s with 16 watchers', null, ing.coordinator.skipped);
      check('stored bytes per token close to the delta size (at most 1.5x)', null, ing.coordinator.skipped);
    } else {
      const fps = ing.coordinator.frames_per_s.median;
      check('streaming ingest at least 5,000 token frames/s with 16 watchers', fps >= 5000,
        `${fmt(fps)} frames/s (margin ${((fps - 5000) / 5000 * 100).toFixed(0)} %)`);
      const bpt = ing.coordinator.db_bytes_per_frame.median;
      const limit = 1.5 * ing.delta_bytes;
      check('stored bytes per token close to the delta size (at most 1.5x)', bpt <= limit,
        `${fmt(bpt)} B of SQLite per ${ing.delta_bytes} B delta = ${(bpt / ing.delta_bytes).toFixed(2)}x (limit ${limit} B)`);
    }
  }
  const rep = results.replay?.coordinator.replays.find((r) => r.count === 10_000);
  if (rep) {
    const ms = rep.total_ms.median;
    check('replay of 10,000 events under 300 ms', ms < 300, `${fmt(ms)} ms (margin ${((300 - ms) / 300 * 100).toFixed(0)} %)`);
  }
  if (results.cold) {
    const wasm = results.cold.size.coordinator.files.index_bg?.gzip ?? results.cold.size.coordinator.files['index_bg.wasm']?.gzip;
    const kib = wasm / KIB;
    check('release wasm under 400 KiB gzipped', kib < 400, `${fmt(kib)} KiB (margin ${((400 - kib) / 400 * 100).toFixed(0)} %)`);
  }
  return out;
}

function pad(text, width) {
  return String(text).padEnd(width);
}

/** The table for a terminal. */
export function renderText(results) {
  const table = rows(results);
  const headers = { scenario: 'scenario', metric: 'metric', n: 'N', coordinator: 'coordinator', floor: 'floor', ratio: 'ratio', cpu: 'CPU % loadgen/workerd (coord | floor)' };
  const keys = Object.keys(headers);
  const widths = Object.fromEntries(keys.map((k) => [k, Math.max(headers[k].length, ...table.map((r) => String(r[k]).length))]));
  const line = (r) => keys.map((k) => pad(r[k], widths[k])).join('  ').trimEnd();
  const lines = [line(headers), keys.map((k) => '-'.repeat(widths[k])).join('  ')];
  let last = null;
  for (const r of table) {
    if (last && r.scenario !== last) lines.push('');
    last = r.scenario;
    lines.push(line(r));
  }
  for (const note of notes(results)) lines.push('', note);
  lines.push('', 'targets:');
  for (const t of targets(results)) lines.push(`  ${t.status.padEnd(4)}  ${t.name}: ${t.detail}`);
  return lines.join('\n');
}

/** Footnotes: why a figure is missing. */
function notes(results) {
  const out = [];
  if (results.ingest?.coordinator.skipped) out.push(`* scenario 3, coordinator: ${results.ingest.coordinator.skipped}`);
  return out;
}

/** The same as a Markdown table, for bench/README.md. */
export function renderMarkdown(results) {
  const table = rows(results);
  const lines = [
    '| scenario | metric | N | coordinator | floor | ratio | CPU % loadgen/workerd (coord \\| floor) |',
    '|---|---|---:|---:|---:|---:|---|',
    ...table.map((r) => `| ${r.scenario.trim()} | ${r.metric} | ${r.n} | ${r.coordinator} | ${r.floor} | ${r.ratio} | ${r.cpu.replace('|', '\\|')} |`),
    ...notes(results).map((n) => `\n${n.replace(/^\*/, '\\*')}`),
    '',
    '| target | result | detail |',
    '|---|---|---|',
    ...targets(results).map((t) => `| ${t.name} | ${t.status} | ${t.detail} |`),
  ];
  return lines.join('\n');
}
