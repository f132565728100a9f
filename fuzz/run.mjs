// Runs every fuzz target (or those named on the command line) for FUZZ_SECONDS each, one after
// the other, and prints a table: target, runs, seconds, coverage, crashes. libFuzzer grows each
// target's corpus in fuzz/corpus/<target>/ (only the seed-* files are committed) and writes
// the input of a crash to fuzz/artifacts/<target>/. Exits 1 when any target crashed.
// Built by scripts/fuzz.sh (FUZZ_PROFILE=release or dev picks the build it runs).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const FUZZ = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(FUZZ, '..');
const TARGETS = [
  'client_frame',
  'bridge_frame',
  'http_body',
  'prompt_body',
  'selection',
  'query',
  'route',
  'signature',
  'participant_token',
  'git_token',
  'branch_name',
  'cursor',
];
const seconds = Number(process.env.FUZZ_SECONDS ?? 60);
const profile = process.env.FUZZ_PROFILE ?? 'release';
// cargo-fuzz's --dev builds land in cargo's `debug` folder.
const bin = path.join(FUZZ, 'target', 'x86_64-unknown-linux-gnu', profile === 'dev' ? 'debug' : profile);
const log = (text) => process.stderr.write(`fuzz: ${text}\n`);

const wanted = process.argv.slice(2);
for (const name of wanted) {
  if (!TARGETS.includes(name)) {
    log(`no target ${name}; the targets are ${TARGETS.join(', ')}`);
    process.exit(2);
  }
}
if (!(seconds > 0)) {
  log('FUZZ_SECONDS must be a positive number');
  process.exit(2);
}

/** One target for `seconds`: libFuzzer's final figures, and the crash if there was one. */
function fuzz(target) {
  const corpus = path.join(FUZZ, 'corpus', target);
  const artifacts = path.join(FUZZ, 'artifacts', target);
  fs.mkdirSync(artifacts, { recursive: true });
  const args = [
    `-max_total_time=${seconds}`,
    // An input that takes this long is reported as a crash (a hang in a decoder).
    '-timeout=10',
    '-print_final_stats=1',
    `-artifact_prefix=${artifacts}/`,
    corpus,
  ];
  const started = performance.now();
  const child = spawn(path.join(bin, target), args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  child.stderr.on('data', (chunk) => {
    output += chunk;
    if (output.length > 4 * 2 ** 20) output = output.slice(-(2 ** 20));
  });
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      const stat = (name) => Number(output.match(new RegExp(`^stat::${name}:\\s*(\\d+)`, 'm'))?.[1] ?? NaN);
      const status = [...output.matchAll(/cov: (\d+) ft: (\d+) corp: (\d+)/g)].at(-1);
      const artifact = output.match(/Test unit written to (\S+)/)?.[1] ?? null;
      const panic = output.match(/panicked at [^\n]*\n[^\n]*/)?.[0] ?? null;
      resolve({
        target,
        runs: stat('number_of_executed_units'),
        seconds: (performance.now() - started) / 1000,
        coverage: status ? Number(status[1]) : NaN,
        features: status ? Number(status[2]) : NaN,
        corpus: status ? Number(status[3]) : NaN,
        crashed: code !== 0 || signal !== null,
        artifact,
        panic,
        tail: output.slice(-3000),
      });
    });
  });
}

const results = [];
for (const target of wanted.length ? wanted : TARGETS) {
  if (!fs.existsSync(path.join(bin, target))) {
    log(`${path.join(bin, target)} is missing; build it with: bash scripts/fuzz.sh`);
    process.exit(2);
  }
  const result = await fuzz(target);
  results.push(result);
  log(`${target}: ${result.runs} runs in ${result.seconds.toFixed(0)} s, coverage ${result.coverage}${result.crashed ? ', CRASHED' : ''}`);
}

const n = (x) => (Number.isFinite(x) ? x.toLocaleString('en-US') : '?');
const lines = [
  `fuzzing: ${seconds} s per target, ${profile} build`,
  '',
  '| target | runs | seconds | runs/s | coverage (edges) | features | corpus | crashes |',
  '|---|---:|---:|---:|---:|---:|---:|---:|',
  ...results.map(
    (r) =>
      `| ${r.target} | ${n(r.runs)} | ${r.seconds.toFixed(0)} | ${n(Math.round(r.runs / r.seconds))} | ${n(r.coverage)} | ${n(r.features)} | ${n(r.corpus)} | ${r.crashed ? 1 : 0} |`,
  ),
];
console.log(lines.join('\n'));
const crashed = results.filter((r) => r.crashed);
for (const r of crashed) {
  console.log(`\n${r.target} crashed${r.panic ? `: ${r.panic}` : ''}`);
  if (r.artifact) console.log(`  input: ${r.artifact}\n  again: ${path.join(bin, r.target)} ${r.artifact}`);
  else console.log(r.tail);
}
console.log(`\n${results.length - crashed.length} passed, ${crashed.length} failed`);
process.exit(crashed.length ? 1 : 0);
