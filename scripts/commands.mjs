// Runs the outside commands of `npm run deploy` and `npm run env:*` (wrangler, modal): shows each
// one, runs it or only shows it (--dry-run), gives secrets on stdin only, and turns a failure into a
// StepError that names the step and the command.
import { spawn } from 'node:child_process';
import path from 'node:path';

/**
 * A step that failed: what it was for, the command as shown, why, and the command's output
 * (`echoed` when it was already shown as it ran, so that it need not be repeated).
 */
export class StepError extends Error {
  constructor(step, command, reason, output = '', echoed = false) {
    super(`step "${step}" failed: \`${command}\` ${reason}`);
    this.step = step;
    this.command = command;
    this.reason = reason;
    this.output = output;
    this.echoed = echoed;
  }
}

/** Bad input or a missing precondition, found before anything ran. */
export class UsageError extends Error {}

const SAFE_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** One argument as a POSIX shell would need it written. */
export function quote(arg) {
  return SAFE_WORD.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** A command as a person would type it: `NAME=value … program args`. Never given secret values. */
export function show(argv, env = {}) {
  const assignments = Object.entries(env).map(([name, value]) => `${name}=${quote(value)}`);
  return [...assignments, ...argv.map(quote)].join(' ');
}

/**
 * The environment the commands run in: the project's node_modules/.bin (wrangler, and the Node 22
 * that wrangler needs) first on PATH, unless PATH has it already somewhere (npm run puts it first).
 */
export function toolEnv(root, base = process.env) {
  const bin = path.join(root, 'node_modules', '.bin');
  const entries = (base.PATH ?? '').split(path.delimiter);
  const PATH = entries.includes(bin) ? base.PATH : [bin, ...entries].join(path.delimiter);
  return { ...base, PATH, WRANGLER_SEND_METRICS: base.WRANGLER_SEND_METRICS ?? 'false' };
}

/**
 * A function `run(step, argv, options)` that shows the command and runs it (or, with `dryRun`,
 * only shows it and returns an empty output). Options: `env` (extra variables, shown), `stdin`
 * ({ value, label }: the value goes to the command's standard input and is shown only as its
 * label), `echo` (false keeps the command's output off the terminal, e.g. JSON that is parsed).
 * Resolves to the command's stdout and stderr; rejects with a StepError.
 */
export function commandRunner({ root, dryRun = false, print = (line) => console.log(line) }) {
  const baseEnv = toolEnv(root);
  return function run(step, argv, { env = {}, stdin, echo = true } = {}) {
    const shown = show(argv, env) + (stdin ? ` < ${stdin.label}` : '');
    print(dryRun ? `  would run: ${shown}` : `  $ ${shown}`);
    if (dryRun) return Promise.resolve({ stdout: '', stderr: '' });
    return new Promise((resolve, reject) => {
      const child = spawn(argv[0], argv.slice(1), {
        cwd: root,
        env: { ...baseEnv, ...env },
        stdio: [stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      const relay = (chunk) => {
        if (echo) process.stderr.write(chunk.toString().replace(/^(?=.)/gm, '    '));
      };
      child.stdout.on('data', (chunk) => {
        stdout += chunk;
        relay(chunk);
      });
      child.stderr.on('data', (chunk) => {
        stderr += chunk;
        relay(chunk);
      });
      child.on('error', (error) => {
        const reason = error.code === 'ENOENT' ? `could not start: ${argv[0]} is not on PATH` : `could not start: ${error.message}`;
        reject(new StepError(step, shown, reason));
      });
      child.on('close', (code, signal) => {
        if (code === 0) return resolve({ stdout, stderr });
        const reason = signal ? `was killed by ${signal}` : `exited with status ${code}`;
        reject(new StepError(step, shown, reason, stdout + stderr, echo));
      });
      if (stdin) {
        // A command that exits before reading its input must not crash this process with EPIPE.
        child.stdin.on('error', () => {});
        child.stdin.end(stdin.value);
      }
    });
  };
}

/** Text without the terminal's colour codes, for quoting a CLI's message in a sentence. */
export const plain = (text) => text.replace(/\x1b\[[0-9;]*m/g, '');

/** The last lines of a failed command's output, indented, to repeat under the error. */
export function tail(output, lines = 12) {
  const kept = plain(output).trimEnd().split('\n').slice(-lines);
  return kept.length && kept[0] !== '' ? kept.map((line) => `    ${line}`).join('\n') : '';
}
