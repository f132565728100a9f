// Feature environments and the deploy: `env:create`, `env:delete`, `env:list` and `npm run deploy`
// against recording fakes of the wrangler and modal CLIs (Cloudflare and Modal are out of reach),
// checking the commands, their order and arguments, a failure halfway and --dry-run; then the real
// wrangler's `deploy --dry-run` on the built Worker, offline, for wrangler.toml and for a generated
// environment. Each test works on a copy of the project's scripts and config in a temporary folder.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'smol-toml';
import { calls, emptyState, installFakes, readState, redact, writeState } from './support/recording-cli.mjs';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SCRIPTS = ['envs.mjs', 'deploy.mjs', 'commands.mjs', 'wrangler-config.mjs', 'env-records.mjs'];
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'coordinator-envs-test-'));
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

/**
 * A copy of what the scripts read (scripts, wrangler.toml, migrations/) in a fresh folder, with the
 * fakes first on PATH. `databaseId` replaces wrangler.toml's placeholder (a production that has a
 * database); `built` adds the built Worker and public/, for the real wrangler.
 */
function project({ databaseId, built = false } = {}) {
  const root = fs.mkdtempSync(path.join(scratch, 'project-'));
  fs.mkdirSync(path.join(root, 'scripts'));
  for (const file of SCRIPTS) fs.copyFileSync(path.join(REPO, 'scripts', file), path.join(root, 'scripts', file));
  let toml = fs.readFileSync(path.join(REPO, 'wrangler.toml'), 'utf8');
  if (databaseId) toml = toml.replace('00000000-0000-4000-8000-000000000000', databaseId);
  fs.writeFileSync(path.join(root, 'wrangler.toml'), toml);
  fs.cpSync(path.join(REPO, 'migrations'), path.join(root, 'migrations'), { recursive: true });
  // The project's packages (smol-toml for the scripts; wrangler and Node 22 for the real dry runs).
  fs.symlinkSync(path.join(REPO, 'node_modules'), path.join(root, 'node_modules'));
  fs.mkdirSync(path.join(root, 'modal'));
  fs.copyFileSync(path.join(REPO, 'modal', 'app.py'), path.join(root, 'modal', 'app.py'));
  if (built) {
    if (!fs.existsSync(path.join(REPO, 'build', 'index.js'))) throw new Error('build/ is missing: run bash scripts/build.sh first (npm test does)');
    fs.cpSync(path.join(REPO, 'build'), path.join(root, 'build'), { recursive: true });
    fs.symlinkSync(path.join(REPO, 'public'), path.join(root, 'public'));
    // wrangler.toml's [build] command; the Worker was built before this file ran.
    fs.writeFileSync(path.join(root, 'scripts', 'build.sh'), '#!/bin/sh\n# built already (npm test builds before the integration tests)\n');
  }
  const fakes = path.join(root, 'fakes');
  const bin = installFakes(fakes);
  return { root, fakes, bin, calls: () => calls(fakes), state: () => readState(fakes) };
}

/**
 * Runs a script of the copy with the fakes first on PATH, before node_modules/.bin as `npm run` puts
 * it (the scripts then leave PATH as it is); resolves to { code, stdout, stderr, output }.
 */
function run(proj, script, args, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(proj.root, 'scripts', script), ...args], {
      cwd: proj.root,
      env: { ...process.env, npm_config_dry_run: '', FAKE_CLI_FAIL: '', ...env, PATH: [proj.bin, path.join(proj.root, 'node_modules', '.bin'), process.env.PATH].join(path.delimiter) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, output: stdout + stderr }));
  });
}

/** The calls as `tool word word …`, for comparing the order and arguments at a glance. */
const lines = (proj) => proj.calls().map((call) => [call.tool, ...call.argv].join(' '));
const readJson = (file) => JSON.parse(fs.readFileSync(file, 'utf8'));
const modeOf = (file) => (fs.statSync(file).mode & 0o777).toString(8);

/** The secret values env:create wrote to envs/NAME.secrets. */
function secretsOf(proj, name) {
  const text = fs.readFileSync(path.join(proj.root, 'envs', `${name}.secrets`), 'utf8');
  return Object.fromEntries([...text.matchAll(/^([A-Z_]+)="([^"]+)"$/gm)].map((m) => [m[1], m[2]]));
}

/** No secret value in the fakes' log (their argv, stdin and files) nor in what the script printed. */
function assertNoSecretLeaks(proj, name, ...outputs) {
  const log = fs.readFileSync(path.join(proj.fakes, 'calls.jsonl'), 'utf8');
  for (const [key, value] of Object.entries(secretsOf(proj, name))) {
    assert.ok(value.length >= 43, `${key} has 32 random bytes or more`);
    assert.ok(!log.includes(value), `${key} must not reach the fakes' argv or log`);
    for (const output of outputs) assert.ok(!output.includes(value), `${key} must not be printed`);
  }
}

const CREATE_ALPHA = [
  'wrangler d1 create coordinator-alpha',
  'wrangler d1 migrations apply DB --remote --config wrangler.envs.jsonc --env alpha',
  'wrangler deploy --config wrangler.envs.jsonc --env alpha',
  'wrangler secret put ADMIN_KEY --config wrangler.envs.jsonc --env alpha',
  'wrangler secret put TOKEN_SECRET --config wrangler.envs.jsonc --env alpha',
  'wrangler secret put PROVIDER_SECRET --config wrangler.envs.jsonc --env alpha',
  'modal secret create session-coordinator-alpha-env --from-json', // + the temporary file's path
  'modal deploy modal/app.py',
  'wrangler deploy --config wrangler.envs.jsonc --env alpha',
];

describe('env:create', () => {
  test('makes the whole stack: the commands in order, with their arguments, and the record and config they leave', async () => {
    const proj = project();
    const result = await run(proj, 'envs.mjs', ['create', 'alpha']);
    assert.equal(result.code, 0, result.output);
    const made = lines(proj);
    assert.equal(made.length, CREATE_ALPHA.length, made.join('\n'));
    CREATE_ALPHA.forEach((expected, i) => assert.ok(made[i].startsWith(expected), `call ${i + 1}: ${made[i]}\nexpected: ${expected}`));
    assert.ok(proj.calls().every((call) => call.exit === 0));

    const [, , , adminPut, tokenPut, providerPut, modalSecret, modalDeploy] = proj.calls();
    const secrets = secretsOf(proj, 'alpha');
    assert.deepEqual(Object.keys(secrets), ['ADMIN_KEY', 'TOKEN_SECRET', 'PROVIDER_SECRET']);
    assert.equal(adminPut.stdin, redact(secrets.ADMIN_KEY), 'each secret goes to wrangler on stdin');
    assert.equal(tokenPut.stdin, redact(secrets.TOKEN_SECRET));
    assert.equal(providerPut.stdin, redact(secrets.PROVIDER_SECRET));
    assert.deepEqual(modalSecret.key_values, [], 'no KEY=VALUE on the modal command line');
    assert.equal(modalSecret.file_mode, '600');
    assert.ok(!fs.existsSync(modalSecret.file_path), 'the temporary secret file is removed');
    assert.deepEqual(modalSecret.file, {
      PROVIDER_SECRET: redact(secrets.PROVIDER_SECRET), // the same value the Worker has
      COORDINATOR_ALLOWLIST: 'https://session-coordinator-alpha.fake-account.workers.dev',
    });
    assert.deepEqual(modalDeploy.env, { MODAL_APP_NAME: 'session-coordinator-alpha', PROVIDER_SECRET_NAME: 'session-coordinator-alpha-env' });

    const record = readJson(path.join(proj.root, 'envs', 'alpha.json'));
    const state = proj.state();
    assert.equal(record.database_id, state.d1['coordinator-alpha']);
    assert.equal(record.worker_url, 'https://session-coordinator-alpha.fake-account.workers.dev');
    assert.equal(record.provider_url, 'https://fake-ws--session-coordinator-alpha-api.modal.run');
    assert.deepEqual(record.created, ['d1', 'worker', 'modal-secret', 'modal-app', 'modal-dict']);
    assert.ok(record.completed_at);
    assert.equal(modeOf(path.join(proj.root, 'envs', 'alpha.secrets')), '600');
    assert.deepEqual(state.workers['session-coordinator-alpha'], { secrets: ['ADMIN_KEY', 'TOKEN_SECRET', 'PROVIDER_SECRET'], deployments: 2 });
    assert.equal(state.modal.apps['session-coordinator-alpha'], 'deployed');

    const generated = fs.readFileSync(path.join(proj.root, 'wrangler.envs.jsonc'), 'utf8');
    assert.match(generated, /^\/\/ Generated by scripts\/envs\.mjs/);
    const config = JSON.parse(generated.replace(/^\/\/.*$/gm, ''));
    const toml = parse(fs.readFileSync(path.join(proj.root, 'wrangler.toml'), 'utf8'));
    const { env, ...top } = config;
    assert.deepEqual(JSON.parse(JSON.stringify(top)), JSON.parse(JSON.stringify(toml)), "wrangler.toml's settings are kept as they are");
    assert.deepEqual(env.alpha, {
      name: 'session-coordinator-alpha',
      workers_dev: true,
      durable_objects: { bindings: [{ name: 'ROOMS', class_name: 'SessionRoom' }] },
      d1_databases: [{ binding: 'DB', database_name: 'coordinator-alpha', database_id: record.database_id, migrations_dir: 'migrations' }],
      vars: {
        ...toml.vars, // REPOS and the rest come along
        ENV: 'production',
        PROVIDER: 'modal',
        PROVIDER_URL: 'https://fake-ws--session-coordinator-alpha-api.modal.run',
        COORDINATOR_URL: 'https://session-coordinator-alpha.fake-account.workers.dev',
        ALLOWED_ORIGINS: '',
      },
    });
    assert.ok(!fs.readFileSync(path.join(proj.root, 'wrangler.toml'), 'utf8').includes('alpha'), 'wrangler.toml is left alone');

    assert.match(result.stdout, /coordinator {2}https:\/\/session-coordinator-alpha\.fake-account\.workers\.dev/);
    assertNoSecretLeaks(proj, 'alpha', result.stdout, result.stderr);
  });

  test('a failed step stops at once, names the step and the command, and leaves the list of what to clean', async () => {
    const proj = project();
    const result = await run(proj, 'envs.mjs', ['create', 'beta'], { FAKE_CLI_FAIL: 'modal deploy' });
    assert.equal(result.code, 1, result.output);
    assert.equal(lines(proj).at(-1), 'modal deploy modal/app.py', 'nothing runs after the failed step');
    assert.match(result.stderr, /step "deploy the Modal app" failed: `MODAL_APP_NAME=session-coordinator-beta PROVIDER_SECRET_NAME=session-coordinator-beta-env modal deploy modal\/app\.py` exited with status 1/);
    const cleanup = [
      'modal app stop session-coordinator-beta --yes',
      'modal dict delete session-coordinator-beta-state --yes --allow-missing',
      'modal secret delete session-coordinator-beta-env --yes --allow-missing',
      'wrangler delete session-coordinator-beta --force',
      'wrangler d1 delete coordinator-beta --skip-confirmation',
      'rm -f envs/beta.json envs/beta.secrets envs/beta.cleanup.sh',
    ];
    const listed = result.stderr.slice(result.stderr.indexOf('Already made'));
    let at = 0;
    for (const command of cleanup) {
      const found = listed.indexOf(command, at);
      assert.ok(found > at, `the cleanup list names \`${command}\` in order:\n${listed}`);
      at = found;
    }
    assert.match(listed, /Modal app session-coordinator-beta \(its step failed: it may exist\)/);
    const script = fs.readFileSync(path.join(proj.root, 'envs', 'beta.cleanup.sh'), 'utf8');
    for (const command of cleanup) assert.ok(script.includes(command), `envs/beta.cleanup.sh has \`${command}\``);
    assertNoSecretLeaks(proj, 'beta', result.stdout, result.stderr);

    // env:delete reads the record and removes the same; the Modal app that never came is "already gone".
    const deleted = await run(proj, 'envs.mjs', ['delete', 'beta']);
    assert.equal(deleted.code, 0, deleted.output);
    assert.match(deleted.stdout, /\$ modal app stop session-coordinator-beta --yes\n {4}\(already gone\)/);
    const state = proj.state();
    assert.deepEqual(state.d1, {});
    assert.deepEqual(state.workers, {});
    assert.deepEqual(state.modal.secrets, {});
    assert.deepEqual(fs.readdirSync(path.join(proj.root, 'envs')), []);
    assert.ok(!fs.existsSync(path.join(proj.root, 'wrangler.envs.jsonc')));
  });

  test('a failure before the Worker exists leaves only the database and the config entry to clean', async () => {
    const proj = project();
    const result = await run(proj, 'envs.mjs', ['create', 'gamma'], { FAKE_CLI_FAIL: 'wrangler d1 migrations' });
    assert.equal(result.code, 1, result.output);
    assert.deepEqual(lines(proj), ['wrangler d1 create coordinator-gamma', 'wrangler d1 migrations apply DB --remote --config wrangler.envs.jsonc --env gamma']);
    assert.match(result.stderr, /step "apply the D1 migrations" failed/);
    const listed = result.stderr.slice(result.stderr.indexOf('Already made'));
    assert.match(listed, /D1 database coordinator-gamma:\n {6}wrangler d1 delete coordinator-gamma --skip-confirmation/);
    assert.match(listed, /rm -f envs\/gamma\.json/);
    assert.doesNotMatch(listed, /modal|wrangler delete/);
    assert.deepEqual(readJson(path.join(proj.root, 'envs', 'gamma.json')).created, ['d1']);
  });

  test('--dry-run prints every command and runs nothing, also when npm took the flag', async () => {
    const proj = project();
    for (const [args, env] of [[['create', 'alpha', '--dry-run'], {}], [['create', 'alpha'], { npm_config_dry_run: 'true' }]]) {
      const result = await run(proj, 'envs.mjs', args, env);
      assert.equal(result.code, 0, result.output);
      const shown = result.stdout.split('\n').filter((line) => line.startsWith('  would run: ')).map((line) => line.slice('  would run: '.length));
      assert.equal(shown.length, CREATE_ALPHA.length, result.stdout);
      shown.forEach((line, i) => assert.ok(line.replace(/^MODAL_APP_NAME=\S+ PROVIDER_SECRET_NAME=\S+ /, '').startsWith(CREATE_ALPHA[i]), line));
    }
    for (const args of [['delete', 'alpha', '--dry-run'], ['list', '--dry-run']]) {
      const result = await run(proj, 'envs.mjs', args);
      assert.equal(result.code, 0, result.output);
      assert.match(result.stdout, /would run: /);
    }
    assert.deepEqual(proj.calls(), [], 'no command ran');
    assert.ok(!fs.existsSync(path.join(proj.root, 'envs')) && !fs.existsSync(path.join(proj.root, 'wrangler.envs.jsonc')), 'nothing was written');
  });

  test('refuses bad names, production\'s, and an environment that exists, before running anything', async () => {
    const proj = project();
    for (const name of ['production', 'sandboxes', 'Alpha', 'a_b', 'a--b', '-a', 'a-', 'x'.repeat(31), '']) {
      const result = await run(proj, 'envs.mjs', ['create', name]);
      assert.equal(result.code, 2, `${name}: ${result.output}`);
      assert.match(result.stderr, /NAME|reserved/);
    }
    assert.equal((await run(proj, 'envs.mjs', ['create'])).code, 2);
    assert.equal((await run(proj, 'envs.mjs', ['create', 'a', 'b'])).code, 2);
    assert.equal((await run(proj, 'envs.mjs', ['create', 'a', '--bogus'])).code, 2);
    assert.equal((await run(proj, 'envs.mjs', ['make', 'a'])).code, 2);
    assert.deepEqual(proj.calls(), []);
    assert.equal((await run(proj, 'envs.mjs', ['create', 'alpha'])).code, 0);
    const again = await run(proj, 'envs.mjs', ['create', 'alpha']);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /exists already \(envs\/alpha\.json\)/);
  });

  test('refuses when wrangler.toml has a binding an environment would share with production', async () => {
    const proj = project();
    fs.appendFileSync(path.join(proj.root, 'wrangler.toml'), '\n[[kv_namespaces]]\nbinding = "CACHE"\nid = "abc"\n');
    const result = await run(proj, 'envs.mjs', ['create', 'alpha']);
    assert.equal(result.code, 2, result.output);
    assert.match(result.stderr, /\[kv_namespaces\]: the environment would share it with production/);
    assert.deepEqual(proj.calls(), []);
  });
});

describe('env:list and env:delete', () => {
  test('env:list shows what envs/ knows and what wrangler and modal report, strays included', async () => {
    const proj = project();
    assert.equal((await run(proj, 'envs.mjs', ['create', 'alpha'])).code, 0);
    const state = proj.state();
    state.d1['coordinator-stray'] = '11111111-2222-4333-8444-555555555555';
    writeState(proj.fakes, state);
    const before = proj.calls().length;
    const result = await run(proj, 'envs.mjs', ['list']);
    assert.equal(result.code, 0, result.output);
    assert.deepEqual(lines(proj).slice(before), [
      'wrangler d1 list --json',
      'modal app list --json',
      'modal secret list --json',
      'wrangler deployments list --name session-coordinator-alpha --json',
    ]);
    assert.match(result.stdout, /^ {2}alpha {2}complete$/m);
    assert.match(result.stdout, /alpha: Worker 2 deployment\(s\) · D1 found · Modal app deployed · Modal secret found/);
    assert.match(result.stdout, /Named like environments but not in envs\/: stray/);

    const offline = await run(proj, 'envs.mjs', ['list', '--offline']);
    assert.equal(offline.code, 0);
    assert.equal(proj.calls().length, before + 4, '--offline asks nobody');

    // Unreachable CLIs are reported, and the list still shows what envs/ knows.
    const down = await run(proj, 'envs.mjs', ['list'], { FAKE_CLI_FAIL: 'modal' });
    assert.equal(down.code, 0, down.output);
    assert.match(down.stdout, /alpha: Worker 2 deployment\(s\) · D1 found · Modal app \? · Modal secret \?/);
    assert.match(down.stdout, /modal: not reachable: `modal app list --json` exited with status 1/);
  });

  test('env:delete removes every piece, in order, then the config entry', async () => {
    const proj = project();
    assert.equal((await run(proj, 'envs.mjs', ['create', 'alpha'])).code, 0);
    assert.equal((await run(proj, 'envs.mjs', ['create', 'delta'])).code, 0);
    const before = proj.calls().length;
    const result = await run(proj, 'envs.mjs', ['delete', 'alpha']);
    assert.equal(result.code, 0, result.output);
    assert.deepEqual(lines(proj).slice(before), [
      'modal app stop session-coordinator-alpha --yes',
      'modal dict delete session-coordinator-alpha-state --yes --allow-missing',
      'modal secret delete session-coordinator-alpha-env --yes --allow-missing',
      'wrangler delete session-coordinator-alpha --force',
      'wrangler d1 delete coordinator-alpha --skip-confirmation',
    ]);
    const state = proj.state();
    assert.deepEqual(Object.keys(state.d1), ['coordinator-delta']);
    assert.deepEqual(Object.keys(state.workers), ['session-coordinator-delta']);
    assert.equal(state.modal.apps['session-coordinator-alpha'], 'stopped');
    assert.deepEqual(fs.readdirSync(path.join(proj.root, 'envs')).sort(), ['delta.json', 'delta.secrets']);
    const config = JSON.parse(fs.readFileSync(path.join(proj.root, 'wrangler.envs.jsonc'), 'utf8').replace(/^\/\/.*$/gm, ''));
    assert.deepEqual(Object.keys(config.env), ['delta']);
  });

  test('env:delete goes on past a failure, reports it and keeps what is left in the record', async () => {
    const proj = project();
    assert.equal((await run(proj, 'envs.mjs', ['create', 'alpha'])).code, 0);
    const result = await run(proj, 'envs.mjs', ['delete', 'alpha'], { FAKE_CLI_FAIL: 'wrangler delete' });
    assert.equal(result.code, 1, result.output);
    assert.match(result.stderr, /step "remove the Worker session-coordinator-alpha \(with its secrets and Durable Objects\)" failed: `wrangler delete session-coordinator-alpha --force`/);
    assert.equal(lines(proj).at(-1), 'wrangler d1 delete coordinator-alpha --skip-confirmation', 'the database is still removed');
    assert.deepEqual(readJson(path.join(proj.root, 'envs', 'alpha.json')).created, ['worker']);
    const again = await run(proj, 'envs.mjs', ['delete', 'alpha']);
    assert.equal(again.code, 0, again.output);
    assert.equal(lines(proj).at(-1), 'wrangler delete session-coordinator-alpha --force');
    assert.deepEqual(proj.state().workers, {});
  });
  test('env:delete without a record removes every piece by its name, passing over those that are not there', async () => {
    const proj = project();
    const state = emptyState();
    state.d1['coordinator-lost'] = '11111111-2222-4333-8444-555555555555';
    state.modal.secrets['session-coordinator-lost-env'] = ['PROVIDER_SECRET'];
    writeState(proj.fakes, state);
    const result = await run(proj, 'envs.mjs', ['delete', 'lost']);
    assert.equal(result.code, 0, result.output);
    assert.match(result.stdout, /no envs\/lost\.json: removing every piece an environment "lost" would have, by its name/);
    assert.equal(lines(proj).length, 5);
    assert.deepEqual(proj.state().d1, {});
    assert.deepEqual(proj.state().modal.secrets, {});
  });
});

describe('npm run deploy', () => {
  const DATABASE_ID = '6f1c2d3e-4a5b-4c6d-8e7f-8091a2b3c4d5';
  const production = (secrets) => {
    const proj = project({ databaseId: DATABASE_ID });
    const state = emptyState();
    state.d1.coordinator = DATABASE_ID;
    state.workers['session-coordinator'] = { secrets, deployments: 1 };
    writeState(proj.fakes, state);
    return proj;
  };

  test('with a secret missing it refuses, names it and how to set it, and deploys nothing', async () => {
    const proj = production(['ADMIN_KEY']);
    const result = await run(proj, 'deploy.mjs', []);
    assert.equal(result.code, 1, result.output);
    assert.match(result.stderr, /TOKEN_SECRET \(signs participant tokens\): wrangler secret put TOKEN_SECRET/);
    assert.doesNotMatch(result.stderr, /ADMIN_KEY \(/);
    assert.deepEqual(lines(proj), ['wrangler secret list --format json']);
  });

  test('checks the secrets, applies the migrations, then deploys with ENV=production', async () => {
    const proj = production(['ADMIN_KEY', 'TOKEN_SECRET']);
    const result = await run(proj, 'deploy.mjs', []);
    assert.equal(result.code, 0, result.output);
    assert.deepEqual(lines(proj), ['wrangler secret list --format json', 'wrangler d1 migrations apply DB --remote', 'wrangler deploy --var ENV:production']);
  });

  test('the Modal provider needs PROVIDER_SECRET too', async () => {
    const proj = production(['ADMIN_KEY', 'TOKEN_SECRET']);
    const file = path.join(proj.root, 'wrangler.toml');
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('PROVIDER = "none"', 'PROVIDER = "modal"').replace('PROVIDER_URL = ""', 'PROVIDER_URL = "https://ws--session-coordinator-sandboxes-api.modal.run"'));
    const result = await run(proj, 'deploy.mjs', []);
    assert.equal(result.code, 1, result.output);
    assert.match(result.stderr, /PROVIDER_SECRET \(signs requests to the sandbox provider/);
  });

  test('refuses the placeholder database and the local provider before running anything', async () => {
    const proj = project();
    const placeholder = await run(proj, 'deploy.mjs', []);
    assert.equal(placeholder.code, 2);
    assert.match(placeholder.stderr, /database_id is the local placeholder: run `wrangler d1 create coordinator`/);
    const file = path.join(proj.root, 'wrangler.toml');
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('PROVIDER = "none"', 'PROVIDER = "local"'));
    const local = await run(proj, 'deploy.mjs', []);
    assert.match(local.stderr, /PROVIDER is "local"/);
    assert.deepEqual(proj.calls(), []);
  });

  test('a Worker that does not exist yet gets a clear message', async () => {
    const proj = project({ databaseId: DATABASE_ID });
    const result = await run(proj, 'deploy.mjs', []);
    assert.equal(result.code, 1, result.output);
    assert.match(result.stderr, /step "check the secrets" failed: `wrangler secret list --format json` exited with status 1/);
    assert.match(result.stderr, /does not exist yet/);
  });

  test('--dry-run prints the commands and runs none; --env deploys a feature environment', async () => {
    const proj = production(['ADMIN_KEY', 'TOKEN_SECRET']);
    const dry = await run(proj, 'deploy.mjs', ['--dry-run']);
    assert.equal(dry.code, 0, dry.output);
    assert.match(dry.stdout, /would run: wrangler secret list --format json\n.*would run: wrangler d1 migrations apply DB --remote\n.*would run: wrangler deploy --var ENV:production/);
    assert.deepEqual(proj.calls(), []);

    assert.equal((await run(proj, 'envs.mjs', ['create', 'alpha'])).code, 0);
    const before = proj.calls().length;
    const result = await run(proj, 'deploy.mjs', ['--env', 'alpha']);
    assert.equal(result.code, 0, result.output);
    const config = '--config wrangler.envs.jsonc --env alpha';
    assert.deepEqual(lines(proj).slice(before), [`wrangler secret list --format json ${config}`, `wrangler d1 migrations apply DB --remote ${config}`, `wrangler deploy ${config}`]);
    assert.equal((await run(proj, 'deploy.mjs', ['--env', 'nope'])).code, 2);
  });
});

describe('wrangler deploy --dry-run (the real wrangler, offline)', () => {
  // The project's wrangler and its Node 22 (node_modules/.bin), not the fakes.
  const realEnv = { PATH: `${path.join(REPO, 'node_modules', '.bin')}${path.delimiter}${process.env.PATH}`, WRANGLER_SEND_METRICS: 'false', CI: 'true' };
  const dryRun = (root, args = []) =>
    new Promise((resolve, reject) => {
      const outdir = fs.mkdtempSync(path.join(scratch, 'outdir-'));
      const child = spawn(path.join(REPO, 'node_modules', '.bin', 'wrangler'), ['deploy', '--dry-run', '--outdir', outdir, ...args], {
        cwd: root,
        env: { ...process.env, ...realEnv },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (chunk) => (output += chunk));
      child.stderr.on('data', (chunk) => (output += chunk));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, output, files: fs.readdirSync(outdir) }));
    });

  test('bundles the built Worker with wrangler.toml', async () => {
    const proj = project({ built: true });
    const result = await dryRun(proj.root);
    assert.equal(result.code, 0, result.output);
    assert.ok(result.files.includes('index.js') && result.files.some((file) => file.endsWith('.wasm')), result.files.join(' '));
    assert.match(result.output, /env\.ROOMS \(SessionRoom\)\s+Durable Object/);
    assert.match(result.output, /env\.DB \(coordinator\)\s+D1 Database/);
  });

  test('fails on a broken bundle and on a broken config', async () => {
    const proj = project({ built: true });
    const entry = path.join(proj.root, 'build', 'index.js');
    fs.writeFileSync(entry, `import "./no-such-module.js";\n${fs.readFileSync(entry, 'utf8')}`);
    const bundle = await dryRun(proj.root);
    assert.notEqual(bundle.code, 0, bundle.output);
    assert.match(bundle.output, /no-such-module/);

    const other = project({ built: true });
    fs.appendFileSync(path.join(other.root, 'wrangler.toml'), '\n[[durable_objects.bindings]]\nname = "ROOMS"\n');
    const config = await dryRun(other.root);
    assert.notEqual(config.code, 0, config.output);
  });

  test('bundles a generated feature environment, with its own name, database and vars and no warning', async () => {
    const proj = project({ built: true });
    assert.equal((await run(proj, 'envs.mjs', ['create', 'alpha'])).code, 0);
    const result = await dryRun(proj.root, ['--config', 'wrangler.envs.jsonc', '--env', 'alpha']);
    assert.equal(result.code, 0, result.output);
    assert.match(result.output, /env\.DB \(coordinator-alpha\)\s+D1 Database/);
    assert.match(result.output, /env\.ENV \("production"\)/);
    assert.match(result.output, /env\.PROVIDER \("modal"\)/);
    assert.match(result.output, /env\.REPOS/);
    assert.doesNotMatch(result.output, /exists at the top level, but not on|WARNING/i);
  });
});
