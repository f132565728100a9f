#!/usr/bin/env node
// `npm run deploy`: deploys production (wrangler.toml's top level, with ENV=production) or, with
// `--env NAME`, a feature environment made by `npm run env:create`. It checks that the Worker's
// secrets are set, applies the D1 migrations, then runs `wrangler deploy`; `--dry-run` prints the
// commands instead. The Modal app is deployed on its own (README.md, "Deploy").
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { StepError, UsageError, commandRunner, show, tail } from './commands.mjs';
import { GENERATED_CONFIG, PLACEHOLDER_DATABASE_ID, readSettings } from './wrangler-config.mjs';
import { nameProblem, namesOf, readRecord, readWranglerToml, recordFile, writeConfig } from './env-records.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const USAGE = 'usage: npm run deploy [-- --env NAME] [-- --dry-run]';

// The Worker's secrets, each with what it is for; PROVIDER_SECRET only with a sandbox provider.
const SECRETS = {
  ADMIN_KEY: 'the only key that works on /v1/users',
  TOKEN_SECRET: 'signs participant tokens',
  PROVIDER_SECRET: 'signs requests to the sandbox provider; the same value as in the Modal secret',
};

/** Production: wrangler.toml's top level, refused while it lacks what a deploy needs. */
function production() {
  const settings = readSettings(readWranglerToml(root));
  const problems = [];
  const database = (settings.d1_databases ?? []).find((db) => db.binding === 'DB');
  if (!database?.database_id || database.database_id === PLACEHOLDER_DATABASE_ID) {
    problems.push(
      "wrangler.toml's D1 database_id is the local placeholder: run `wrangler d1 create coordinator` " +
        'and put the database_id it prints into [[d1_databases]]',
    );
  }
  const vars = settings.vars ?? {};
  const provider = vars.PROVIDER || 'none';
  if (provider === 'local') {
    problems.push('PROVIDER is "local" in wrangler.toml: it runs commands on the machine it is on, for `npm run dev` only; set "modal" or "none"');
  }
  if (provider === 'modal' && !vars.PROVIDER_URL) {
    problems.push('PROVIDER is "modal" but PROVIDER_URL is empty: put the URL `modal deploy modal/app.py` printed into [vars]');
  }
  if (problems.length) throw new UsageError(`production is not ready to deploy:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  if (provider === 'none') console.log('deploy: PROVIDER is "none": prompts will wait, as no sandbox provider is configured');
  return {
    label: 'production',
    flags: [],
    // ENV=production whatever wrangler.toml's [vars] says: its "development" is for `npm run dev`.
    deployFlags: ['--var', 'ENV:production'],
    secrets: provider === 'none' ? ['ADMIN_KEY', 'TOKEN_SECRET'] : Object.keys(SECRETS),
  };
}

/** A feature environment: its env.NAME in the generated config, rewritten first from wrangler.toml. */
function featureEnvironment(name) {
  const problem = nameProblem(name);
  if (problem) throw new UsageError(problem);
  const record = readRecord(root, name);
  if (!record) throw new UsageError(`there is no feature environment "${name}" (${recordFile(name)}): npm run env:create -- ${name}`);
  if (!record.completed_at) {
    throw new UsageError(`the environment "${name}" was never completed: npm run env:delete -- ${name}, then env:create again`);
  }
  writeConfig(root);
  const { modalApp, modalSecret } = namesOf(name);
  return {
    label: `the feature environment "${name}"`,
    flags: ['--config', GENERATED_CONFIG, '--env', name],
    deployFlags: [],
    secrets: Object.keys(SECRETS),
    modal: show(['modal', 'deploy', 'modal/app.py'], { MODAL_APP_NAME: modalApp, PROVIDER_SECRET_NAME: modalSecret }),
  };
}

async function main(argv) {
  let values;
  try {
    const options = { env: { type: 'string' }, 'dry-run': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } };
    ({ values } = parseArgs({ args: argv, options }));
  } catch (error) {
    throw new UsageError(error.message);
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  // `npm run deploy --dry-run` without `--` hands the flag to npm, which says so in the environment.
  const dryRun = Boolean(values['dry-run']) || process.env.npm_config_dry_run === 'true';
  const target = values.env === undefined || values.env === 'production' ? production() : featureEnvironment(values.env);
  const run = commandRunner({ root, dryRun });
  console.log(`deploy: ${target.label}${dryRun ? ' (dry run: nothing runs)' : ''}`);

  const listing = ['wrangler', 'secret', 'list', '--format', 'json', ...target.flags];
  const { stdout } = await run('check the secrets', listing, { echo: false });
  if (!dryRun) {
    let names;
    try {
      names = JSON.parse(stdout.slice(Math.max(0, stdout.indexOf('[')))).map((secret) => secret.name);
    } catch {
      throw new StepError('check the secrets', show(listing), 'printed no JSON list', stdout);
    }
    const missing = target.secrets.filter((secret) => !names.includes(secret));
    if (missing.length) {
      console.error(`deploy: ${target.label} lacks ${missing.length === 1 ? 'a secret' : 'secrets'}; nothing was deployed:`);
      for (const secret of missing) {
        console.error(`  - ${secret} (${SECRETS[secret]}): ${show(['wrangler', 'secret', 'put', secret, ...target.flags])}`);
      }
      return 1;
    }
    console.log(`    ${target.secrets.join(', ')}: set`);
  }
  await run('apply the D1 migrations', ['wrangler', 'd1', 'migrations', 'apply', 'DB', '--remote', ...target.flags]);
  await run('deploy the Worker', ['wrangler', 'deploy', ...target.deployFlags, ...target.flags]);
  console.log(dryRun ? 'deploy: dry run done' : `deploy: ${target.label} is deployed`);
  if (target.modal) console.log(`deploy: its Modal app is deployed on its own; after a change in modal/: ${target.modal}`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    if (error instanceof UsageError) {
      console.error(`deploy: ${error.message}\n${USAGE}`);
      process.exitCode = 2;
    } else if (error instanceof StepError) {
      console.error(`deploy: ${error.message}; nothing after it ran`);
      if (!error.echoed && error.output) console.error(tail(error.output));
      if (/does not exist/i.test(error.output)) {
        console.error('  The Worker does not exist yet: its first `wrangler secret put` (with the same flags) creates it.');
      }
      process.exitCode = 1;
    } else {
      throw error;
    }
  },
);
