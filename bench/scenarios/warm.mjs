// Scenario 6: send → prompt_started with a warm sandbox claimed from the pool, against a cold
// one started for the session, with the local provider and real bridges: the `dev` agent, and
// OpenCode (`opencode serve`) answering from a local stub model.
//
// A coordinator of its own (PROVIDER=local, WARM_POOL {"acme/demo": 1}) next to a
// `bridge provider`. Each run:
//   cold  a session on acme/web (no pool) created with its prompt: the room asks the provider
//         for a sandbox, the bridge starts, starts its agent, dials in, and the prompt starts;
//   warm  once the pool's sandbox waits for its assignment (its agent started), a session on
//         acme/demo created with its prompt: the room claims it, the provider writes the
//         assignment, the bridge dials in, and the prompt starts.
// The figure is the room's own: the `prompt_started` event's time minus the `message` event's
// (the time the prompt was queued), as `GET /v1/metrics` counts it; the client's wall time from
// the request to seeing `prompt_started` is reported beside it.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Runtime } from '../lib/runtime.mjs';
import { spread } from '../lib/stats.mjs';
import { freePort, sleep } from '../../tests/support/server.mjs';
import { startLocalProvider } from '../../tests/support/sandbox.mjs';

const OPENCODE_VERSION = '1.18.33';

export async function warm(ctx) {
  const out = {};
  for (const agent of ['dev', 'opencode']) {
    let extra = {};
    let model = null;
    if (agent === 'opencode') {
      const bin = findOpenCode(ctx);
      if (!bin) {
        const reason = `OpenCode is not installed and npm could not install opencode-ai@${OPENCODE_VERSION}`;
        ctx.log(`warm: ${reason}; skipping the OpenCode runs`);
        out.opencode = { skipped: reason };
        continue;
      }
      model = await stubModel();
      extra = {
        OPENCODE_BIN: bin,
        OPENCODE_MODEL: 'stub/stub-model',
        OPENCODE_CONFIG_CONTENT: JSON.stringify({
          model: 'stub/stub-model',
          provider: { stub: { npm: '@ai-sdk/openai-compatible', options: { baseURL: `${model.url}/v1`, apiKey: 'x' }, models: { 'stub-model': {} } } },
        }),
        SANDBOX_ENV_PASSTHROUGH: 'OPENCODE_CONFIG_CONTENT',
      };
    }
    try {
      out[agent] = await measure(ctx, agent, extra);
    } finally {
      await model?.stop();
    }
  }
  return out;
}

/** `opencode` from OPENCODE_BIN, node_modules, or installed by npm into the state folder. */
function findOpenCode(ctx) {
  const candidates = [process.env.OPENCODE_BIN, path.join(ctx.stateRoot, '..', 'node_modules', '.bin', 'opencode')].filter(Boolean);
  const local = path.resolve(path.dirname(ctx.coordinatorConfig), 'node_modules', '.bin', 'opencode');
  for (const bin of [...candidates, local]) if (fs.existsSync(bin)) return bin;
  const prefix = path.join(ctx.stateRoot, 'opencode');
  const installed = spawnSync('npm', ['install', '--no-save', '--no-audit', '--no-fund', '--prefix', prefix, `opencode-ai@${OPENCODE_VERSION}`], { encoding: 'utf8', timeout: 300_000 });
  const bin = path.join(prefix, 'node_modules', '.bin', 'opencode');
  return installed.status === 0 && fs.existsSync(bin) ? bin : null;
}

/** An OpenAI-compatible model that streams a short answer (also asked once for a title). */
async function stubModel() {
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const chunk = (delta, finish = null) =>
        `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 0, model: 'stub-model', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
      res.write(chunk({ role: 'assistant', content: 'Hello ' }));
      res.write(chunk({ content: 'from the stub.' }));
      res.write(chunk({}, 'stop'));
      res.end('data: [DONE]\n\n');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    stop: () => new Promise((resolve) => { server.close(resolve); server.closeAllConnections(); }),
  };
}

async function measure(ctx, agent, extraEnv) {
  const secret = randomBytes(24).toString('base64url');
  const providerPort = await freePort();
  const provider = await startLocalProvider({ port: providerPort, secret, env: { AGENT: agent, HEARTBEAT_SECS: '5', ...extraEnv } });
  const runtime = new Runtime({
    name: `warm-${agent}`,
    configPath: ctx.coordinatorConfig,
    modules: ctx.coordinatorModules,
    bindings: {
      ...ctx.coordinatorBindings,
      ENV: 'development',
      PROVIDER: 'local',
      PROVIDER_URL: `http://127.0.0.1:${providerPort}`,
      PROVIDER_SECRET: secret,
      WARM_POOL: JSON.stringify({ 'acme/demo': 1 }),
    },
    persistDir: path.join(ctx.stateRoot, `warm-${agent}`),
  });
  const runs = { cold: [], warm: [] };
  try {
    await runtime.start();
    await runtime.migrateD1('DB', ctx.migrationsDir);
    const base = runtime.base;
    const request = async (method, route, key, body) => {
      const res = await fetch(base + route, {
        method,
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      if (res.status >= 300) throw new Error(`${method} ${route}: HTTP ${res.status} ${text.slice(0, 300)}`);
      return JSON.parse(text);
    };
    const user = await request('POST', '/v1/users', ctx.coordinatorBindings.ADMIN_KEY, { name: 'bench', email: 'bench@example.com', scopes: { repos: ['*'] } });
    const key = user.api_key;
    const worker = await runtime.mf.getWorker();
    const used = new Set();

    /** A session created with its prompt → {started_ms (room), wall_ms (client)}. */
    const prompted = async (repo) => {
      const sent = performance.now();
      const created = await request('POST', '/v1/sessions', key, { repo, title: `bench ${agent}`, prompt: 'hello' });
      const sid = created.session.id;
      for (const deadline = Date.now() + 120_000; Date.now() < deadline; ) {
        const { events } = await request('GET', `/v1/sessions/${sid}/events?limit=100`, key);
        const started = events.find((e) => e.type === 'prompt_started');
        if (started) {
          const wall = performance.now() - sent;
          const queued = events.find((e) => e.type === 'message');
          const state = await request('GET', `/v1/sessions/${sid}`, key);
          used.add(state.sandbox?.id);
          // The sandbox is not needed any more: archiving ends it.
          await request('DELETE', `/v1/sessions/${sid}`, key);
          return { started_ms: Date.parse(started.ts) - Date.parse(queued.ts), wall_ms: Math.round(wall), warm: state.sandbox?.warm ?? false };
        }
        await sleep(20);
      }
      throw new Error(`warm bench (${agent}): prompt_started did not come within 120 s`);
    };

    /** Waits until a warm sandbox not used yet waits for its assignment, its agent started. */
    const poolReady = async () => {
      for (const deadline = Date.now() + 120_000; Date.now() < deadline; ) {
        const ids = [...provider.log().matchAll(/warm sandbox (\S+): bridge pid/g)].map((m) => m[1]).filter((id) => !used.has(id));
        const waiting = ids.find((id) => provider.log().includes(`[${id}] `) && new RegExp(`\\[${id}\\] .*waiting for an assignment`).test(provider.log()));
        if (waiting) return waiting;
        await sleep(50);
      }
      throw new Error(`warm bench (${agent}): no warm sandbox became ready within 120 s`);
    };

    await worker.scheduled({ cron: '*/5 * * * *' });
    for (let run = 0; run < ctx.runs; run += 1) {
      runs.cold.push(await prompted('acme/web'));
      const id = await poolReady();
      const result = await prompted('acme/demo');
      if (!result.warm) throw new Error(`warm bench (${agent}): the session did not get warm sandbox ${id}`);
      runs.warm.push(result);
      // The claim tops the pool up; the next run waits for it.
    }
  } finally {
    await runtime.stop();
    await provider.stop();
  }
  const figures = (list) => ({
    started_ms: spread(list.map((r) => r.started_ms)),
    wall_ms: spread(list.map((r) => r.wall_ms)),
  });
  return { cold: figures(runs.cold), warm: figures(runs.warm), raw: runs };
}
