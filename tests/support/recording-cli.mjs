// Recording fakes of the `wrangler` and `modal` CLIs, for tests/envs.test.mjs: Cloudflare and
// Modal are out of reach, so these stand at that boundary. `installFakes(dir)` puts a `wrangler` and
// a `modal` into dir/bin that run this file; each call appends one JSON line to dir/calls.jsonl
// (argv; a secret given on stdin or in a --from-json file only as its length and a short hash) and
// keeps what exists in dir/state.json, printing output shaped like the real CLIs'.
// FAKE_CLI_FAIL="modal deploy" makes every call starting with those words fail.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const THIS_FILE = fileURLToPath(import.meta.url);

/** Writes dir/bin/wrangler and dir/bin/modal; returns the bin folder to put first on PATH. */
export function installFakes(dir) {
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  for (const tool of ['wrangler', 'modal']) {
    const script = `#!/bin/sh\nFAKE_CLI_DIR='${dir}' exec '${process.execPath}' '${THIS_FILE}' ${tool} "$@"\n`;
    fs.writeFileSync(path.join(bin, tool), script, { mode: 0o755 });
  }
  return bin;
}

/** The calls recorded so far, oldest first. */
export function calls(dir) {
  const file = path.join(dir, 'calls.jsonl');
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((line) => JSON.parse(line));
}

export const emptyState = () => ({ workers: {}, d1: {}, modal: { apps: {}, secrets: {}, dicts: [] } });

export function readState(dir) {
  const file = path.join(dir, 'state.json');
  return fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : emptyState();
}

export function writeState(dir, state) {
  fs.writeFileSync(path.join(dir, 'state.json'), JSON.stringify(state, null, 2));
}

/** A secret as the log may hold it: its length and the first characters of its SHA-256. */
export function redact(value) {
  return `<${value.length} chars, sha256 ${crypto.createHash('sha256').update(value).digest('hex').slice(0, 12)}>`;
}

class Failure extends Error {
  constructor(message, code = 1) {
    super(message);
    this.code = code;
  }
}

function flags(argv) {
  const named = {};
  const positional = [];
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (!arg.startsWith('-')) positional.push(arg);
    else if (['--config', '-c', '--env', '-e', '--name', '--format', '--from-json', '--from-dotenv', '--outdir', '--var'].includes(arg)) named[arg.replace(/^-+/, '')] = argv[++i];
    else named[arg.replace(/^-+/, '')] = true;
  }
  return { named, positional };
}

/** The Worker name and D1 database id wrangler would use, read from the config file (TOML, or JSONC with whole-line comments). */
function workerOf(named) {
  const file = named.config ?? named.c ?? 'wrangler.toml';
  if (!fs.existsSync(file)) throw new Failure(`✘ [ERROR] Could not read the configuration file ${file}`);
  const text = fs.readFileSync(file, 'utf8');
  const env = named.env ?? named.e;
  if (file.endsWith('.toml')) {
    if (env) throw new Failure('fake wrangler: environments are expected in the generated JSONC config');
    return { name: text.match(/^name\s*=\s*"([^"]+)"/m)[1], databaseId: text.match(/database_id\s*=\s*"([^"]+)"/)?.[1] };
  }
  const config = JSON.parse(text.replace(/^\s*\/\/.*$/gm, ''));
  const settings = env ? config.env?.[env] : config;
  if (!settings) throw new Failure(`✘ [ERROR] No environment found in configuration with name "${env}".`);
  return { name: settings.name, databaseId: settings.d1_databases?.[0]?.database_id };
}

const uuid = () => crypto.randomUUID();

function wrangler(argv, state, stdin) {
  const { named, positional } = flags(argv);
  const [command, sub] = positional;
  const missingWorker = (name) => new Failure(`✘ [ERROR] A request to the Cloudflare API failed.\n  This Worker does not exist on your account. [code: 10007]\n  (worker ${name})`);
  if (command === 'd1' && sub === 'create') {
    const name = positional[2];
    if (state.d1[name]) throw new Failure(`✘ [ERROR] A database with that name already exists [code: 7502]`);
    state.d1[name] = uuid();
    return [
      '',
      ' ⛅️ wrangler 4.164.0 (fake)',
      '───────────────────────────',
      `✅ Successfully created DB '${name}' in region WEUR`,
      'Created your new D1 database.',
      '',
      'To access your new D1 Database in your Worker, add the following snippet to your configuration file:',
      '[[d1_databases]]',
      `binding = "${name.replaceAll('-', '_')}"`,
      `database_name = "${name}"`,
      `database_id = "${state.d1[name]}"`,
    ].join('\n');
  }
  if (command === 'd1' && sub === 'migrations' && positional[2] === 'apply') {
    if (!named.remote) throw new Failure('fake wrangler: this test expects --remote');
    const id = workerOf(named).databaseId;
    const name = Object.keys(state.d1).find((db) => state.d1[db] === id);
    if (!name) throw new Failure(`✘ [ERROR] Couldn't find DB with id '${id}'`);
    return `🌀 Executing on remote database ${name} (${id}):\n┌──────────────────────────┬────────┐\n│ 0001_users_sessions.sql  │ ✅      │\n└──────────────────────────┴────────┘`;
  }
  if (command === 'd1' && sub === 'delete') {
    const name = positional[2];
    if (!named.y && !named['skip-confirmation']) throw new Failure('fake wrangler: d1 delete would ask for confirmation');
    if (!state.d1[name]) throw new Failure(`✘ [ERROR] Couldn't find DB with name '${name}'`);
    delete state.d1[name];
    return `✅ Deleted '${name}' successfully.`;
  }
  if (command === 'd1' && sub === 'list' && named.json) {
    return JSON.stringify(Object.entries(state.d1).map(([name, id]) => ({ uuid: id, name, created_at: '2026-12-01T00:00:00Z', version: 'production' })), null, 2);
  }
  if (command === 'deploy') {
    const { name } = workerOf(named);
    if (named['dry-run']) return 'Total Upload: 1028.85 KiB / gzip: 396.70 KiB\n--dry-run: exiting now.';
    const worker = (state.workers[name] ??= { secrets: [], deployments: 0 });
    worker.deployments += 1;
    return `Total Upload: 1028.85 KiB / gzip: 396.70 KiB\nUploaded ${name} (2.10 sec)\nDeployed ${name} triggers (0.41 sec)\n  https://${name}.fake-account.workers.dev\nCurrent Version ID: ${uuid()}`;
  }
  if (command === 'secret' && sub === 'put') {
    const key = positional[2];
    const { name } = workerOf(named);
    if (!stdin) throw new Failure('fake wrangler: the secret value was expected on stdin');
    const worker = (state.workers[name] ??= { secrets: [], deployments: 0 });
    if (!worker.secrets.includes(key)) worker.secrets.push(key);
    return `🌀 Creating the secret for the Worker "${name}"\n✨ Success! Uploaded secret ${key}`;
  }
  if (command === 'secret' && sub === 'list') {
    const { name } = workerOf(named);
    if (!state.workers[name]) throw missingWorker(name);
    return JSON.stringify(state.workers[name].secrets.map((key) => ({ name: key, type: 'secret_text' })), null, '  ');
  }
  if (command === 'delete') {
    const name = positional[1];
    if (!name) throw new Failure('fake wrangler: this test expects the Worker to be named');
    if (!state.workers[name]) throw missingWorker(name);
    delete state.workers[name];
    return `Successfully deleted ${name}`;
  }
  if (command === 'deployments' && sub === 'list' && named.json) {
    const worker = state.workers[named.name];
    if (!worker) throw missingWorker(named.name);
    return JSON.stringify(Array.from({ length: worker.deployments }, () => ({ id: uuid(), source: 'wrangler', strategy: 'percentage' })));
  }
  throw new Failure(`fake wrangler: no fake for \`wrangler ${argv.join(' ')}\``, 2);
}

function modal(argv, state, entry) {
  const { named, positional } = flags(argv);
  const [command, sub] = positional;
  const { apps, secrets, dicts } = state.modal;
  if (command === 'secret' && sub === 'create') {
    const name = positional[2];
    entry.key_values = positional.slice(3);
    const values = {};
    if (named['from-json']) {
      const file = named['from-json'];
      entry.file_mode = (fs.statSync(file).mode & 0o777).toString(8);
      for (const [key, value] of Object.entries(JSON.parse(fs.readFileSync(file, 'utf8')))) values[key] = value;
      entry.file = Object.fromEntries(Object.entries(values).map(([key, value]) => [key, /SECRET|KEY|TOKEN/.test(key) ? redact(value) : value]));
      entry.file_path = file;
    }
    if (secrets[name] && !named.force) throw new Failure(`Secret '${name}' already exists. Use --force to overwrite.`);
    secrets[name] = Object.keys(values);
    return `Created a new secret '${name}' with the keys ${Object.keys(values).map((key) => `'${key}'`).join(', ')}`;
  }
  if (command === 'deploy') {
    const app = process.env.MODAL_APP_NAME || 'session-coordinator-sandboxes';
    const secret = process.env.PROVIDER_SECRET_NAME || 'session-coordinator-provider';
    if (!secrets[secret]) throw new Failure(`Secret '${secret}' not found in environment 'main'`);
    apps[app] = 'deployed';
    return [
      '✓ Created objects.',
      `├── 🔨 Created mount ${positional[1]}`,
      '├── 🔨 Created function build_repo_image.',
      '├── 🔨 Created function refresh_repo_images.',
      `└── 🔨 Created web function api => https://fake-ws--${app}-api.modal.run (unauthenticated)`,
      '✓ App deployed in 3.210s! 🎉',
      '',
      `View Deployment: https://modal.com/apps/fake-ws/main/deployed/${app}`,
    ].join('\n');
  }
  if (command === 'app' && sub === 'stop') {
    const app = positional[2];
    if (!named.yes && !named.y) throw new Failure('fake modal: app stop would ask for confirmation');
    if (apps[app] !== 'deployed') throw new Failure(`Could not find a deployed app named '${app}'`);
    apps[app] = 'stopped';
    return '';
  }
  if ((command === 'secret' || command === 'dict') && sub === 'delete') {
    const name = positional[2];
    if (!named.yes && !named.y) throw new Failure(`fake modal: ${command} delete would ask for confirmation`);
    const exists = command === 'secret' ? name in secrets : dicts.includes(name);
    if (!exists && !named['allow-missing']) throw new Failure(`${command === 'secret' ? 'Secret' : 'Dict'} '${name}' not found`);
    if (command === 'secret') delete secrets[name];
    else state.modal.dicts = dicts.filter((dict) => dict !== name);
    return '';
  }
  if (command === 'app' && sub === 'list' && named.json) {
    return JSON.stringify(Object.entries(apps).map(([app, appState], i) => ({ app_id: `ap-${i}`, description: app, state: appState, tasks: '0', created_at: '2026-12-01 00:00 UTC', stopped_at: null })));
  }
  if (command === 'secret' && sub === 'list' && named.json) {
    return JSON.stringify(Object.keys(secrets).map((name) => ({ name, created_at: '2026-12-01 00:00 UTC', created_by: 'fake', last_used_at: '-' })));
  }
  throw new Failure(`fake modal: no fake for \`modal ${argv.join(' ')}\``, 2);
}

function main() {
  const [tool, ...argv] = process.argv.slice(2);
  const dir = process.env.FAKE_CLI_DIR;
  const entry = { tool, argv };
  for (const name of ['MODAL_APP_NAME', 'PROVIDER_SECRET_NAME', 'STATE_DICT_NAME']) {
    if (process.env[name]) (entry.env ??= {})[name] = process.env[name];
  }
  const secretPut = tool === 'wrangler' && argv[0] === 'secret' && argv[1] === 'put';
  const stdin = secretPut ? fs.readFileSync(0, 'utf8') : '';
  if (secretPut) entry.stdin = redact(stdin);
  const state = readState(dir);
  let code = 0;
  try {
    const failing = process.env.FAKE_CLI_FAIL;
    if (failing && `${tool} ${argv.join(' ')}`.startsWith(failing)) throw new Failure(`✘ [ERROR] simulated failure of \`${failing}\``);
    const output = tool === 'wrangler' ? wrangler(argv, state, stdin) : modal(argv, state, entry);
    if (output) process.stdout.write(`${output}\n`);
    writeState(dir, state);
  } catch (error) {
    if (!(error instanceof Failure)) throw error;
    process.stderr.write(`${error.message}\n`);
    code = error.code;
  }
  entry.exit = code;
  fs.appendFileSync(path.join(dir, 'calls.jsonl'), `${JSON.stringify(entry)}\n`);
  process.exitCode = code;
}

if (process.argv[1] === THIS_FILE) main();
