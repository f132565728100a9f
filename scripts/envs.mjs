#!/usr/bin/env node
// `npm run env:create|env:delete|env:list`: feature environments, each a whole stack beside
// production to try a branch on: its own Worker (and so its own Durable Object namespace), D1
// database, secrets, Modal app and Modal secret. See README.md, "Feature environments".
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { StepError, UsageError, commandRunner, plain, quote, show, tail, toolEnv } from './commands.mjs';
import { GENERATED_CONFIG } from './wrangler-config.mjs';
import {
  checkTemplate, cleanupFile, listRecords, nameProblem, namesOf, readRecord, recordFile, removeFiles,
  secretsFile, writeConfig, writeRecord, writeSecrets,
} from './env-records.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const say = (line = '') => console.log(line);

const USAGE = `usage: npm run env:create -- NAME [--dry-run]
       npm run env:delete -- NAME [--dry-run]
       npm run env:list [-- --offline]
NAME: lowercase letters, digits and dashes, not "production". --dry-run prints each command instead of running it;
--offline lists what envs/ knows without asking wrangler and modal.`;

// The pieces of an environment in the order env:delete removes them: an id (as in a record's
// `created`), what it is, and the command that removes it.
const PIECES = [
  ['modal-app', (n) => `Modal app ${n.modalApp}`, (n) => ['modal', 'app', 'stop', n.modalApp, '--yes']],
  ['modal-dict', (n) => `Modal dict ${n.modalDict} (the app's state)`, (n) => ['modal', 'dict', 'delete', n.modalDict, '--yes', '--allow-missing']],
  ['modal-secret', (n) => `Modal secret ${n.modalSecret}`, (n) => ['modal', 'secret', 'delete', n.modalSecret, '--yes', '--allow-missing']],
  ['worker', (n) => `Worker ${n.worker} (with its secrets and Durable Objects)`, (n) => ['wrangler', 'delete', n.worker, '--force']],
  ['d1', (n) => `D1 database ${n.database}`, (n) => ['wrangler', 'd1', 'delete', n.database, '--skip-confirmation']],
];
const SECRET_NAMES = ['ADMIN_KEY', 'TOKEN_SECRET', 'PROVIDER_SECRET'];
// What the CLIs say when the thing to remove is not there (wrangler: "does not exist", "Couldn't
// find DB"; modal: "Could not find", "not found"): for env:delete that piece is already gone.
const ABSENT = /not found|does not exist|couldn't find|could not find|no such/i;

/** 32 random bytes each; the admin key carries the same prefix as the local one. */
function newSecrets() {
  const random = () => crypto.randomBytes(32).toString('base64url');
  return { ADMIN_KEY: `adm_${random()}`, TOKEN_SECRET: random(), PROVIDER_SECRET: random() };
}

function found(pattern, output, what, step, command) {
  const match = output.match(pattern);
  if (!match) throw new StepError(step, command, `printed no ${what}`, output, true);
  return match[1] ?? match[0];
}

/** Runs `work`, a step that makes `pieces`; they go into the record as created, or as uncertain if it fails. */
async function making(record, save, pieces, work) {
  try {
    await work();
    record.created.push(...pieces);
  } catch (error) {
    record.uncertain.push(...pieces);
    throw error;
  } finally {
    save();
  }
}

/** Gives `work` the path of a private temporary JSON file holding `values`, removed afterwards. */
async function withPrivateJson(values, dryRun, work) {
  if (dryRun) return work(`<a temporary JSON file: ${Object.keys(values).join(', ')}>`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coordinator-env-'));
  const file = path.join(dir, 'secret.json');
  try {
    fs.writeFileSync(file, JSON.stringify(values), { mode: 0o600 });
    return await work(file);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function onPath(program) {
  return toolEnv(root).PATH.split(path.delimiter).some((dir) => {
    try {
      fs.accessSync(path.join(dir, program), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

async function create(name, { run, dryRun }) {
  const names = namesOf(name);
  if (readRecord(root, name)) {
    throw new UsageError(
      `an environment "${name}" exists already (${recordFile(name)}): npm run env:delete -- ${name} first, or choose another NAME`,
    );
  }
  checkTemplate(root, name);
  if (!dryRun) {
    if (!onPath('wrangler')) throw new UsageError("wrangler is not on PATH: bash scripts/setup.sh installs the project's");
    if (!onPath('modal')) throw new UsageError('modal is not on PATH: pip install modal, then modal token new');
  }
  const record = { name, ...names, created: [], uncertain: [], started_at: new Date().toISOString() };
  const save = () => {
    if (dryRun) return;
    writeRecord(root, record);
    writeConfig(root);
  };
  const config = ['--config', GENERATED_CONFIG, '--env', name];
  say(`env:create ${name}${dryRun ? ' (dry run: nothing runs, nothing is written)' : ''}`);
  const writing = dryRun ? 'would write' : 'writing';
  say(`  ${writing} ${recordFile(name)}, the record of what is made, and env.${name} in ${GENERATED_CONFIG}`);
  save();
  try {
    await making(record, save, ['d1'], async () => {
      const step = 'create the D1 database';
      const argv = ['wrangler', 'd1', 'create', names.database];
      const { stdout, stderr } = await run(step, argv);
      const id = /database_id\W+([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/;
      record.database_id = dryRun ? '<database-id>' : found(id, stdout + stderr, 'database_id', step, show(argv));
    });
    await run('apply the D1 migrations', ['wrangler', 'd1', 'migrations', 'apply', 'DB', '--remote', ...config]);
    // The Worker first: its workers.dev URL is what the Modal secret's allowlist must name.
    await making(record, save, ['worker'], async () => {
      const step = 'deploy the Worker';
      const argv = ['wrangler', 'deploy', ...config];
      const { stdout, stderr } = await run(step, argv);
      const url = new RegExp(`https://${names.worker}\\.[a-z0-9.-]+\\.workers\\.dev`);
      record.worker_url = dryRun
        ? `https://${names.worker}.<workers-subdomain>.workers.dev`
        : found(url, stdout + stderr, 'workers.dev URL', step, show(argv));
    });
    const secrets = newSecrets();
    if (!dryRun) writeSecrets(root, name, secrets);
    say(`  ${dryRun ? 'would write' : 'wrote'} ${secretsFile(name)} (readable only by you): ${SECRET_NAMES.join(', ')}`);
    for (const key of SECRET_NAMES) {
      const stdin = { value: secrets[key], label: `(the generated ${key}, ${secrets[key].length} characters)` };
      await run(`set the secret ${key}`, ['wrangler', 'secret', 'put', key, ...config], { stdin });
    }
    // From a file, not KEY=VALUE arguments: a command line is visible to every process on the machine.
    const modalValues = { PROVIDER_SECRET: secrets.PROVIDER_SECRET, COORDINATOR_ALLOWLIST: record.worker_url };
    await making(record, save, ['modal-secret'], () =>
      withPrivateJson(modalValues, dryRun, (file) =>
        run('create the Modal secret', ['modal', 'secret', 'create', names.modalSecret, '--from-json', file]),
      ),
    );
    await making(record, save, ['modal-app', 'modal-dict'], async () => {
      const step = 'deploy the Modal app';
      const argv = ['modal', 'deploy', 'modal/app.py'];
      const env = { MODAL_APP_NAME: names.modalApp, PROVIDER_SECRET_NAME: names.modalSecret };
      const { stdout, stderr } = await run(step, argv, { env });
      const url = /https:\/\/[a-z0-9-]+--[a-z0-9-]+\.modal\.run/;
      record.provider_url = dryRun
        ? `https://<modal-workspace>--${names.modalApp}-api.modal.run`
        : found(url, stdout + stderr, 'web endpoint URL', step, show(argv, env));
    });
    await run('deploy the Worker again, with its Modal provider', ['wrangler', 'deploy', ...config]);
  } catch (error) {
    if (error instanceof StepError) return failedCreate(name, record, error, dryRun);
    throw error;
  }
  record.completed_at = new Date().toISOString();
  save();
  say('');
  say(`Feature environment "${name}" is up:`);
  say(`  coordinator  ${record.worker_url}`);
  say(`  provider     ${record.provider_url}`);
  say(`  admin key    ADMIN_KEY in ${secretsFile(name)}`);
  say(`Deploy a change to it: npm run deploy -- --env ${name}.   Remove it all: npm run env:delete -- ${name}`);
  return 0;
}

/** What a failed env:create leaves, with the commands that remove it: printed, and written to envs/NAME.cleanup.sh. */
function failedCreate(name, record, error, dryRun) {
  const names = namesOf(name);
  console.error(`\nenv:create ${name}: ${error.message}`);
  if (!error.echoed && error.output) console.error(tail(error.output));
  const left = PIECES.filter(([id]) => record.created.includes(id) || record.uncertain.includes(id)).map(([id, label, argv]) => {
    const uncertain = record.uncertain.includes(id);
    return { what: label(names) + (uncertain ? ' (its step failed: it may exist)' : ''), command: show(argv(names)), uncertain };
  });
  const files = [recordFile(name), secretsFile(name), cleanupFile(name)];
  left.push({ what: `the config entry ${recordFile(name)} and ${secretsFile(name)}`, command: `rm -f ${files.join(' ')}` });
  console.error('\nAlready made, to be cleaned up (npm run env:delete -- ' + name + ' removes all of it):');
  for (const item of left) console.error(`  - ${item.what}:\n      ${item.command}`);
  if (!dryRun) {
    const script = [
      '#!/usr/bin/env bash',
      `# What env:create ${name} had made when step "${error.step}" failed (${new Date().toISOString()}).`,
      `# npm run env:delete -- ${name} removes the same; or run this file: bash ${cleanupFile(name)}`,
      'set -e',
      'cd "$(dirname "$0")/.."',
      'PATH="$PWD/node_modules/.bin:$PATH"',
      ...left.map((item) => (item.uncertain ? `${item.command} || echo ${quote('(not removed: perhaps it was never made)')}` : item.command)),
      `# ${GENERATED_CONFIG} drops its env.${name} at the next env command.`,
      '',
    ].join('\n');
    fs.writeFileSync(path.join(root, cleanupFile(name)), script, { mode: 0o755 });
    console.error(`These commands are in ${cleanupFile(name)}.`);
  }
  return 1;
}

async function remove(name, { run, dryRun }) {
  const names = namesOf(name);
  const record = readRecord(root, name);
  const pieces = record ? PIECES.filter(([id]) => record.created.includes(id) || record.uncertain?.includes(id)) : PIECES;
  say(`env:delete ${name}${dryRun ? ' (dry run: nothing runs, nothing is removed)' : ''}`);
  if (!record) say(`  no ${recordFile(name)}: removing every piece an environment "${name}" would have, by its name`);
  const failed = [];
  for (const [id, label, argv] of pieces) {
    try {
      await run(`remove the ${label(names)}`, argv(names));
    } catch (error) {
      if (!(error instanceof StepError)) throw error;
      if (ABSENT.test(error.output)) {
        say('    (already gone)');
      } else {
        failed.push(id);
        console.error(`  env:delete ${name}: ${error.message}`);
      }
    }
  }
  if (dryRun) {
    say(`  would remove ${recordFile(name)}, ${secretsFile(name)} and env.${name} from ${GENERATED_CONFIG}`);
    return 0;
  }
  if (failed.length) {
    // Keep the record, holding only what is left, so that env:delete can be run again.
    const left = (ids = []) => ids.filter((id) => failed.includes(id));
    if (record) writeRecord(root, { ...record, created: left(record.created), uncertain: left(record.uncertain) });
    console.error(`\nenv:delete ${name}: could not remove ${failed.join(', ')}; ${recordFile(name)} keeps them for the next env:delete.`);
    return 1;
  }
  removeFiles(root, name);
  writeConfig(root);
  say(`Feature environment "${name}" is removed.`);
  return 0;
}

/**
 * Runs a listing command and parses its JSON; null when the CLI cannot be reached, with a note the
 * first time (the tool is then in `notes.unreachable` and not asked again).
 */
async function query(run, dryRun, step, argv, notes) {
  if (notes.unreachable?.has(argv[0])) return null;
  try {
    const { stdout } = await run(step, argv, { echo: false });
    if (dryRun) return null;
    return JSON.parse(stdout.slice(Math.max(0, stdout.search(/[[{]/))));
  } catch (error) {
    if (error instanceof SyntaxError) {
      notes.push(`${argv[0]}: \`${show(argv)}\` printed no JSON`);
    } else if (error instanceof StepError && ABSENT.test(error.output)) {
      return []; // reached, and what was asked about is not there
    } else if (error instanceof StepError) {
      const first = plain(error.output).trim().split('\n')[0].trim().slice(0, 200);
      notes.push(`${argv[0]}: not reachable: \`${error.command}\` ${error.reason}${first ? ` (${first})` : ''}`);
      (notes.unreachable ??= new Set()).add(argv[0]);
    } else {
      throw error;
    }
    return null;
  }
}

/** Names of environments that pieces found remotely belong to, by the naming rule of namesOf. */
function namesFound(databases, apps, secrets) {
  const found = new Set();
  const live = (app) => !/stop/.test(app.state);
  for (const db of databases ?? []) found.add(db.name.match(/^coordinator-(.+)$/)?.[1]);
  for (const app of (apps ?? []).filter(live)) found.add(app.description.match(/^session-coordinator-(.+)$/)?.[1]);
  for (const secret of secrets ?? []) found.add(secret.name.match(/^session-coordinator-(.+)-env$/)?.[1]);
  return [...found].filter((name) => name && nameProblem(name) === null);
}

async function list({ run, dryRun, offline }) {
  const records = listRecords(root);
  say(records.length ? 'Feature environments (envs/):' : 'No feature environments in envs/.');
  for (const record of records) {
    const perhaps = record.uncertain?.length ? `; perhaps ${record.uncertain.join(', ')}` : '';
    const made = `made: ${record.created.join(', ') || 'nothing'}${perhaps}`;
    say(`  ${record.name}  ${record.completed_at ? 'complete' : `incomplete (${made}; npm run env:delete -- ${record.name} cleans it)`}`);
    say(`    Worker ${record.worker} ${record.worker_url ?? ''}`);
    say(`    D1 ${record.database} ${record.database_id ?? ''} · Modal app ${record.modalApp} ${record.provider_url ?? ''}`);
  }
  if (!dryRun) writeConfig(root);
  if (offline) return 0;
  say(dryRun ? 'Would ask wrangler and modal what exists:' : 'What wrangler and modal report:');
  const notes = [];
  const ask = (step, argv) => query(run, dryRun, step, argv, notes);
  const databases = await ask('list the D1 databases', ['wrangler', 'd1', 'list', '--json']);
  const apps = await ask('list the Modal apps', ['modal', 'app', 'list', '--json']);
  const secrets = await ask('list the Modal secrets', ['modal', 'secret', 'list', '--json']);
  const has = (items, name) => (items ? (items.some((item) => item.name === name) ? 'found' : 'missing') : '?');
  const appState = (app) => (apps ? (apps.find((item) => item.description === app && !/stop/.test(item.state))?.state ?? 'missing') : '?');
  for (const record of records) {
    const deployments = await ask(`list the deployments of ${record.worker}`, ['wrangler', 'deployments', 'list', '--name', record.worker, '--json']);
    if (dryRun) continue;
    const worker = deployments ? (deployments.length ? `${deployments.length} deployment(s)` : 'missing') : '?';
    const modal = `Modal app ${appState(record.modalApp)} · Modal secret ${has(secrets, record.modalSecret)}`;
    say(`  ${record.name}: Worker ${worker} · D1 ${has(databases, record.database)} · ${modal}`);
  }
  // Pieces named like an environment's that no record knows: left over from another machine or a lost record.
  const known = new Set(records.map((record) => record.name));
  const strays = namesFound(databases, apps, secrets).filter((name) => !known.has(name));
  if (strays.length) say(`  Named like environments but not in envs/: ${strays.join(', ')} (npm run env:delete -- NAME removes them by name)`);
  for (const note of notes) say(`  ${note}`);
  return 0;
}

async function main(argv) {
  let parsed;
  try {
    const options = { 'dry-run': { type: 'boolean' }, offline: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } };
    parsed = parseArgs({ args: argv, allowPositionals: true, options });
  } catch (error) {
    throw new UsageError(error.message);
  }
  const { values, positionals } = parsed;
  const [command, name, ...extra] = positionals;
  if (values.help) {
    say(USAGE);
    return 0;
  }
  // `npm run env:create NAME --dry-run` without `--` hands the flag to npm, which says so in the environment.
  const dryRun = Boolean(values['dry-run']) || process.env.npm_config_dry_run === 'true';
  const run = commandRunner({ root, dryRun });
  if (command === 'list') {
    if (name) throw new UsageError(`list takes no NAME (got "${name}")`);
    return list({ run, dryRun, offline: values.offline });
  }
  if (command !== 'create' && command !== 'delete') {
    throw new UsageError(`the command must be create, delete or list, not ${command ?? 'nothing'}`);
  }
  if (extra.length) throw new UsageError(`one NAME only (got ${[name, ...extra].join(' ')})`);
  const problem = nameProblem(name);
  if (problem) throw new UsageError(problem);
  return command === 'create' ? create(name, { run, dryRun }) : remove(name, { run, dryRun });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    if (!(error instanceof UsageError)) throw error;
    console.error(`env: ${error.message}\n${USAGE}`);
    process.exitCode = 2;
  },
);
