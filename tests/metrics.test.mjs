// Operations: GET /v1/metrics over a scripted set of sessions (three authors, api, web,
// extension and Slack sources, a prompt cancelled before it started, cold starts and a warm one
// claimed from the pool that the cron filled, a merged and a closed pull request through the fake
// GitHub's webhooks) against figures computed here by hand from what the API
// shows; the metrics page in Chromium (with a screenshot); deep health against fakes of the
// provider, GitHub, Slack and the classifier; and the JSON log lines, with no secret in them.
//
// The test speaks as the bridge through the recording provider, so it controls when each
// prompt starts, streams its first token and ends.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ROOT, addMember, allEvents, api, createSession, createUser, eventually, fireCron, rid, sleep, useServer } from './support/server.mjs';
import { dialBridge, nthCreate, startRecordingProvider } from './support/sandbox.mjs';
import { appKeyPair, startFakeGithub, webhookSignature } from './support/fake-github.mjs';
import { slackHeaders, startFakeSlack } from './support/fake-slack.mjs';
import { collectPageErrors, launchBrowser, screenshot, signInContext } from './support/browser.mjs';

const providerSecret = randomBytes(24).toString('base64url');
const webhookSecret = `wh_${randomBytes(16).toString('hex')}`;
const slackToken = `xoxb-${randomBytes(12).toString('hex')}`;
const slackSigningSecret = randomBytes(32).toString('hex');
const classifierKey = `sk-${randomBytes(12).toString('hex')}`;
const keys = appKeyPair();
const DAY_MS = 86_400_000;
let fake;
let provider;
let slack;
let classifier;

/** A small HTTP server answering `handle(req, body) → [status, json]`, counting calls. */
async function fakeServer(handle) {
  const fakeApi = { calls: [] };
  fakeApi.server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      fakeApi.calls.push({ method: req.method, url: req.url, authorization: req.headers.authorization });
      const [status, json] = handle(req, body);
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(json));
    });
  });
  await new Promise((resolve) => fakeApi.server.listen(0, '127.0.0.1', resolve));
  fakeApi.url = `http://127.0.0.1:${fakeApi.server.address().port}`;
  fakeApi.stop = () => new Promise((resolve) => { fakeApi.server.close(resolve); fakeApi.server.closeAllConnections(); });
  return fakeApi;
}

const ctx = useServer({
  vars: async () => {
    fake = await startFakeGithub({ appId: 4243, publicKey: keys.publicKey, installations: [{ account: 'acme', repos: ['acme/demo', 'acme/web'] }] });
    provider = await startRecordingProvider({ secret: providerSecret });
    slack = await startFakeSlack({ botToken: slackToken, channels: { CDEMO: 'demo-team' } });
    // The classifier refuses its key: deep health says so, and the whole is degraded.
    classifier = await fakeServer(() => [401, { error: { message: 'invalid api key' } }]);
    return {
      PROVIDER: 'local',
      PROVIDER_URL: provider.url,
      PROVIDER_SECRET: providerSecret,
      GITHUB_APP_ID: '4243',
      GITHUB_APP_PRIVATE_KEY: keys.pkcs8.replace(/\n/g, '\\n'),
      GITHUB_WEBHOOK_SECRET: webhookSecret,
      GITHUB_API_URL: fake.apiUrl,
      GITHUB_WEB_URL: fake.url,
      GIT_HOST: `${fake.url}/git`,
      PR_AS_APP_FALLBACK: 'true',
      SLACK_BOT_TOKEN: slackToken,
      SLACK_SIGNING_SECRET: slackSigningSecret,
      SLACK_API_URL: slack.apiUrl,
      SLACK_CHANNEL_REPOS: 'CDEMO=acme/demo',
      CLASSIFIER_URL: `${classifier.url}/v1`,
      CLASSIFIER_MODEL: 'fast',
      CLASSIFIER_API_KEY: classifierKey,
      WARM_POOL: JSON.stringify({ 'acme/demo': 1 }),
    };
  },
});

after(async () => {
  await Promise.allSettled([provider?.stop(), fake?.stop(), slack?.stop(), classifier?.stop()]);
});

/** Rows of the local D1 database, read with wrangler as an operator would. */
function d1(sql) {
  const out = execFileSync(path.join(ROOT, 'node_modules', '.bin', 'wrangler'), ['d1', 'execute', 'DB', '--local', '--persist-to', ctx.server.persistDir, '--command', sql, '--json'], {
    cwd: ROOT,
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: 'true', NO_COLOR: '1' },
    encoding: 'utf8',
  });
  return JSON.parse(out)[0].results;
}

/** The session's sandbox (the next one created, when `sid` is not known yet), with the test speaking as its bridge. */
async function sandboxOf(sid, creates) {
  const create = await nthCreate(provider, creates);
  if (sid) assert.equal(create.session_id, sid);
  const bridge = ctx.clients.add(await dialBridge(ctx.server, create.session_id, { token: create.sandbox_token, sandboxId: create.sandbox_id }));
  bridge.send({ type: 'ready', sandbox_id: create.sandbox_id, agent: 'test', agent_version: '1' });
  const timer = setInterval(() => bridge.isOpen && bridge.send({ type: 'heartbeat' }), 500);
  bridge.closed.then(() => clearInterval(timer));
  return { create, bridge, seen: new Set() };
}

/** The warm sandbox the session claimed (the `n`th claim), with the test speaking as its bridge. */
async function claimedSandboxOf(sid, n) {
  const claim = await eventually(() => provider.claims[n - 1], { what: `claim ${n}` });
  assert.equal(claim.session_id, sid);
  const bridge = ctx.clients.add(await dialBridge(ctx.server, sid, { token: claim.sandbox_token, sandboxId: claim.sandbox_id }));
  bridge.send({ type: 'ready', sandbox_id: claim.sandbox_id, agent: 'test', agent_version: '1' });
  const timer = setInterval(() => bridge.isOpen && bridge.send({ type: 'heartbeat' }), 500);
  bridge.closed.then(() => clearInterval(timer));
  return { create: claim, bridge, seen: new Set() };
}

/** Runs the next prompt as the bridge: a first token after `tokenAfterMs`, a push if asked,
 * then done; resolves once the room acknowledged the frames. */
async function runPrompt(sandbox, { tokenAfterMs = 50, doneAfterMs = 50, push = false } = {}) {
  const prompt = await sandbox.bridge.waitFor((f) => f.type === 'prompt' && !sandbox.seen.has(f.message_id), 10_000);
  sandbox.seen.add(prompt.message_id);
  await sleep(tokenAfterMs);
  sandbox.bridge.send({ type: 'token', message_id: prompt.message_id, delta: 'Looking at it…' });
  await sleep(doneAfterMs);
  const acks = [];
  if (push) {
    acks.push(rid('push'));
    sandbox.bridge.send({ type: 'pushed', message_id: prompt.message_id, branch: prompt.push_branch, commit: randomBytes(20).toString('hex'), files_changed: 1, additions: 1, deletions: 0, ack_id: acks.at(-1) });
  }
  acks.push(rid('done'));
  sandbox.bridge.send({ type: 'done', message_id: prompt.message_id, ok: true, ack_id: acks.at(-1) });
  for (const ack of acks) await sandbox.bridge.waitFor((f) => f.type === 'ack' && f.ack_id === ack, 10_000);
  return prompt;
}

async function deliver(event, payload) {
  const body = JSON.stringify(payload);
  const res = await fetch(`${ctx.server.url}/v1/github/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-github-event': event, 'x-github-delivery': fake.deliveryId(), 'x-hub-signature-256': webhookSignature(webhookSecret, body) },
    body,
  });
  assert.equal(res.status, 200, await res.text());
}

async function openPullRequest(user, sid) {
  const res = await api(ctx.server).post(`/v1/sessions/${sid}/pull-request`, { key: user.key, body: {} });
  assert.equal(res.status, 201, res.text);
  return res.json.pull_request;
}

// --- figures by hand ---------------------------------------------------------------------------

/** Nearest rank: the smallest value with at least p% of the values at or below it. */
function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.ceil((p / 100) * sorted.length) - 1];
}

function latency(values) {
  return values.length ? { n: values.length, p50: percentile(values, 50), p95: percentile(values, 95) } : { n: 0, p50: null, p95: null };
}

// Prompt latencies are kept in buckets a twentieth of a decade wide, and a percentile is shown
// as the upper bound of its bucket (src/metrics.rs): the first 10^(b/20), rounded, at or above it.
const bound = (b) => Math.round(10 ** (b / 20));
const bucketed = (ms) => {
  for (let b = 0; b < 160; b++) if (ms <= bound(b)) return bound(b);
  return bound(160);
};

function bucketedLatency(values) {
  const exact = latency(values);
  return exact.n ? { n: exact.n, p50: bucketed(exact.p50), p95: bucketed(exact.p95) } : exact;
}

const share = (part, whole) => (whole ? part / whole : null);

/** The figures GET /v1/metrics must show for these sessions, prompts and pull requests. */
function figures({ sessions, prompts, created, merged }) {
  const multiplayer = sessions.filter((s) => new Set(prompts.filter((p) => p.sid === s.id).map((p) => p.author)).size >= 2).length;
  const started = prompts.filter((p) => p.started !== null);
  const none = latency([]);
  return {
    sessions: sessions.length,
    multiplayer_sessions: multiplayer,
    multiplayer_share: share(multiplayer, sessions.length),
    prompts: prompts.length,
    unique_users: new Set(prompts.map((p) => p.author)).size,
    // Cold and warm by the sandbox each prompt ran on.
    time_to_first_token_ms: {
      all: bucketedLatency(started.map((p) => p.firstToken - p.queued)),
      cold: bucketedLatency(started.filter((p) => p.warm === false).map((p) => p.firstToken - p.queued)),
      warm: bucketedLatency(started.filter((p) => p.warm === true).map((p) => p.firstToken - p.queued)),
    },
    time_to_prompt_started_ms: {
      all: bucketedLatency(started.map((p) => p.started - p.queued)),
      cold: bucketedLatency(started.filter((p) => p.warm === false).map((p) => p.started - p.queued)),
      warm: bucketedLatency(started.filter((p) => p.warm === true).map((p) => p.started - p.queued)),
    },
    prs_created: created.length,
    prs_merged: merged.length,
    merge_rate: share(created.filter((pr) => pr.merged_at).length, created.length),
    time_to_merge_ms: latency(merged.map((pr) => Date.parse(pr.merged_at) - Date.parse(pr.created_at))),
  };
}

const dayOf = (ms) => new Date(ms).toISOString().slice(0, 10);

// --- the scripted sessions --------------------------------------------------------------------

let people;
let script; // {sessions, prompts, pulls} as the API and D1 show them
const windowQuery = () => `from=${dayOf(Date.now() - DAY_MS)}&to=${dayOf(Date.now() + DAY_MS)}`;

async function readBack(sessions) {
  const prompts = [];
  for (const session of sessions) {
    const owner = session.owner;
    const messages = (await api(ctx.server).get(`/v1/sessions/${session.id}/messages?limit=500`, { key: owner.key })).json.messages;
    const events = await allEvents(ctx.server, owner, session.id);
    const { sandbox } = (await api(ctx.server).get(`/v1/sessions/${session.id}`, { key: owner.key })).json;
    for (const m of messages) {
      const token = events.find((e) => e.type === 'token' && e.message_id === m.id);
      prompts.push({
        sid: session.id,
        repo: session.repo,
        author: m.author.user_id,
        queued: Date.parse(m.created_at),
        started: m.started_at ? Date.parse(m.started_at) : null,
        firstToken: token ? Date.parse(token.ts) : null,
        // One sandbox per scripted session: claimed from the pool or started for it.
        warm: sandbox?.warm ?? null,
      });
    }
  }
  return prompts;
}

describe('metrics', () => {
  before(async () => {
    const scopes = { repos: ['acme/*'] };
    people = {
      alice: await createUser(ctx.server, 'Alice', scopes),
      bob: await createUser(ctx.server, 'Bob', scopes),
      carol: await createUser(ctx.server, 'Carol', scopes),
      dana: await createUser(ctx.server, 'Dana', { repos: [], metrics: true }),
    };
    const { alice, bob, carol } = people;

    // Demo: Alice opens it with a prompt (api), Bob prompts from the extension, Alice from the
    // page; its pull request is merged.
    let creates = provider.creates.length + 1;
    const demo = await createSession(ctx.server, alice, { repo: 'acme/demo', title: 'Dark mode', prompt: 'Add a dark mode' });
    const demoId = demo.session.id;
    await addMember(ctx.server, alice, demoId, bob);
    const demoBox = await sandboxOf(demoId, creates);
    await runPrompt(demoBox, { tokenAfterMs: 300, push: true });
    assert.equal((await api(ctx.server).post(`/v1/sessions/${demoId}/prompts`, { key: bob.key, body: { content: 'and a toggle', source: 'extension' } })).status, 202);
    await runPrompt(demoBox, { tokenAfterMs: 120 });
    assert.equal((await api(ctx.server).post(`/v1/sessions/${demoId}/prompts`, { key: alice.key, body: { content: 'thanks', source: 'web' } })).status, 202);
    await runPrompt(demoBox, { tokenAfterMs: 20 });
    const demoPr = await openPullRequest(alice, demoId);

    // Web: Carol alone, from the page; her pull request is closed without a merge.
    creates = provider.creates.length + 1;
    const web = await createSession(ctx.server, carol, { repo: 'acme/web', title: 'Fix the footer' });
    const webId = web.session.id;
    assert.equal((await api(ctx.server).post(`/v1/sessions/${webId}/prompts`, { key: carol.key, body: { content: 'fix the footer', source: 'web' } })).status, 202);
    await runPrompt(await sandboxOf(webId, creates), { tokenAfterMs: 60, push: true });
    const webPr = await openPullRequest(carol, webId);

    // Slack: Carol asks in the demo team's channel; the session is hers, its prompt from Slack.
    creates = provider.creates.length + 1;
    slack.users.UCAROL = { name: 'carol', real_name: 'Carol', email: carol.user.email };
    const mention = slack.userMessage('CDEMO', { user: 'UCAROL', text: `<@${slack.botUserId}> the logo is blurry` });
    const event = { ...mention, channel: 'CDEMO', event_ts: mention.ts, type: 'app_mention' };
    const envelope = JSON.stringify({ team_id: slack.teamId, api_app_id: 'A1', type: 'event_callback', event_id: `Ev${randomBytes(6).toString('hex')}`, event_time: Math.floor(Date.now() / 1000), event });
    const delivered = await api(ctx.server).post('/v1/slack/events', { raw: envelope, headers: { 'content-type': 'application/json', ...slackHeaders(slackSigningSecret, envelope) } });
    assert.equal(delivered.status, 200, delivered.text);
    const slackBox = await sandboxOf(undefined, creates);
    await runPrompt(slackBox, { tokenAfterMs: 90 });
    const slackId = slackBox.create.session_id;

    // Demo again: Alice's prompt is cancelled before any sandbox takes it.
    const waiting = await createSession(ctx.server, alice, { repo: 'acme/demo', title: 'Never mind', prompt: 'rename everything' });
    const cancelled = await api(ctx.server).post(`/v1/sessions/${waiting.session.id}/cancel`, { key: alice.key, body: { message_id: waiting.message_id } });
    assert.equal(cancelled.status, 200, cancelled.text);

    // Demo, warm: the cron fills the pool; Bob's session claims the warm sandbox, which only
    // then learns its session and gets its token.
    await fireCron(ctx.server);
    await eventually(() => provider.warmStarts.length >= 1, { what: 'the cron started a warm sandbox' });
    assert.equal(provider.warmStarts[0].sandbox_token, undefined, 'a warm sandbox gets no token');
    assert.equal(provider.warmStarts[0].session_id, undefined, 'nor a session');
    const warm = await createSession(ctx.server, bob, { repo: 'acme/demo', title: 'Warm start', prompt: 'Start warm' });
    const warmId = warm.session.id;
    const warmBox = await claimedSandboxOf(warmId, 1);
    assert.equal(warmBox.create.sandbox_id, provider.warmStarts[0].sandbox_id);
    await runPrompt(warmBox, { tokenAfterMs: 40 });

    // GitHub says: the demo pull request merged an hour and a bit after it was opened; the web one closed.
    const [demoRow] = d1(`SELECT created_at FROM pull_requests WHERE number = ${demoPr.number}`);
    const mergedAt = new Date(Math.ceil(Date.parse(demoRow.created_at) / 1000) * 1000 + 3_600_000).toISOString().replace('.000Z', 'Z');
    const merged = fake.updatePull('acme/demo', demoPr.number, { state: 'closed', merged_at: mergedAt, closed_at: mergedAt });
    await deliver('pull_request', { action: 'closed', number: demoPr.number, pull_request: merged, repository: { full_name: 'acme/demo' } });
    const closedAt = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const closed = fake.updatePull('acme/web', webPr.number, { state: 'closed', merged_at: null, closed_at: closedAt });
    await deliver('pull_request', { action: 'closed', number: webPr.number, pull_request: closed, repository: { full_name: 'acme/web' } });

    const sessions = [];
    for (const [id, owner] of [[demoId, alice], [webId, carol], [slackId, carol], [waiting.session.id, alice], [warmId, bob]]) {
      const { session } = (await api(ctx.server).get(`/v1/sessions/${id}`, { key: owner.key })).json;
      sessions.push({ id, owner, repo: session.repo, created: Date.parse(session.created_at) });
    }
    const pulls = d1('SELECT repo, created_at, merged_at FROM pull_requests ORDER BY created_at');
    script = { sessions, prompts: await readBack(sessions), pulls };
    assert.equal(script.prompts.length, 7);
    assert.equal(script.prompts.filter((p) => p.started !== null && p.firstToken !== null).length, 6);
    assert.deepEqual(script.prompts.filter((p) => p.started !== null).map((p) => p.warm), [false, false, false, false, false, true]);
  });

  /** The figures of `script` for one repository or one day, or all of it. */
  function expected({ repo, day } = {}) {
    const inRepo = (r) => !repo || r === repo;
    const inDay = (ms) => !day || dayOf(ms) === day;
    return figures({
      sessions: script.sessions.filter((s) => inRepo(s.repo) && inDay(s.created)),
      prompts: script.prompts.filter((p) => inRepo(p.repo) && inDay(p.queued)),
      created: script.pulls.filter((pr) => inRepo(pr.repo) && inDay(Date.parse(pr.created_at))),
      merged: script.pulls.filter((pr) => pr.merged_at && inRepo(pr.repo) && inDay(Date.parse(pr.merged_at))),
    });
  }

  /** The answer once every prompt's record has reached D1 (rooms write after the fact). */
  async function metrics(query, { repo } = {}) {
    const want = script.prompts.filter((p) => !repo || p.repo === repo).length;
    return eventually(async () => {
      const res = await api(ctx.server).get(`/v1/metrics?${query}`, { key: people.dana.key });
      assert.equal(res.status, 200, res.text);
      return res.json.totals.prompts === want && res.json;
    }, { what: 'every prompt recorded', ms: 15_000 });
  }

  test('the totals, each repository and each day equal the figures computed by hand', async () => {
    const answer = await metrics(windowQuery());
    const strip = ({ repo: _r, day: _d, ...rest }) => rest;
    assert.deepEqual(answer.totals, expected());
    assert.equal(answer.totals.multiplayer_sessions, 1, 'the demo session had two authors');
    assert.equal(answer.totals.prs_merged, 1);
    assert.equal(answer.totals.merge_rate, 0.5);
    assert.equal(answer.totals.time_to_first_token_ms.all.n, 6, 'the cancelled prompt never started');
    assert.equal(answer.totals.time_to_prompt_started_ms.cold.n, 5);
    assert.equal(answer.totals.time_to_prompt_started_ms.warm.n, 1, 'the prompt on the claimed sandbox');
    assert.equal(answer.humans_prompting_now, 3);
    assert.deepEqual(answer.repos.map((r) => r.repo), ['acme/demo', 'acme/web']);
    for (const r of answer.repos) assert.deepEqual(strip(r), expected({ repo: r.repo }), r.repo);
    assert.equal(answer.days.length, 3, 'yesterday, today and tomorrow');
    for (const d of answer.days) assert.deepEqual(strip(d), expected({ day: d.day }), d.day);

    // One repository: only its figures.
    const web = await metrics(`${windowQuery()}&repo=acme/web`, { repo: 'acme/web' });
    assert.equal(web.repo, 'acme/web');
    assert.deepEqual(web.totals, expected({ repo: 'acme/web' }));
    assert.deepEqual(web.repos.map((r) => r.repo), ['acme/web']);

    // The sessions table keeps participants and distinct prompt authors.
    const demoId = script.sessions[0].id;
    assert.deepEqual(d1(`SELECT participants, prompt_authors FROM sessions WHERE id = '${demoId}'`), [{ participants: 2, prompt_authors: 2 }]);
    const sources = d1(`SELECT source, COUNT(*) AS n FROM prompt_metrics GROUP BY source ORDER BY source`);
    assert.deepEqual(sources, [{ source: 'api', n: 3 }, { source: 'extension', n: 1 }, { source: 'slack', n: 1 }, { source: 'web', n: 2 }]);
    assert.deepEqual(d1('SELECT warm, COUNT(*) AS n FROM prompt_metrics WHERE to_started_ms IS NOT NULL GROUP BY warm ORDER BY warm'), [{ warm: 0, n: 5 }, { warm: 1, n: 1 }]);
  });

  test('who may read metrics, and bad windows', async () => {
    const http = api(ctx.server);
    assert.equal((await http.get(`/v1/metrics?${windowQuery()}`, { key: ctx.server.adminKey })).status, 200, 'the admin key');
    const refused = await http.get('/v1/metrics', { key: people.alice.key });
    assert.equal(refused.status, 403);
    assert.equal(refused.json.error.code, 'forbidden');
    assert.equal((await http.get('/v1/metrics')).status, 401);
    for (const query of ['from=yesterday', 'from=2026-01-02&to=2026-01-01', 'repo=nope', 'from=2020-01-01&to=2026-01-01']) {
      const bad = await http.get(`/v1/metrics?${query}`, { key: people.dana.key });
      assert.equal(bad.status, 422, query);
      assert.equal(bad.json.error.code, 'invalid_field', query);
    }
  });

  test('the metrics page draws the series, the bars and the live count in Chromium', { timeout: 60_000 }, async () => {
    await metrics(windowQuery());
    const chrome = await launchBrowser();
    try {
      const context = await chrome.browser.newContext({ viewport: { width: 1280, height: 900 } });
      await signInContext(context, people.dana.key);
      const page = collectPageErrors(await context.newPage());
      await page.goto(`${ctx.server.url}/#/metrics`);
      await page.locator('#humans-now', { hasText: '3' }).waitFor({ timeout: 15_000 });
      await page.locator('.bar-row').nth(1).waitFor();
      assert.deepEqual(await page.locator('.bar-name').allTextContents(), ['acme/demo', 'acme/web']);
      const shown = Object.fromEntries(await page.locator('.figure').evaluateAll((els) => els.map((el) => [el.querySelector('dt').textContent, el.querySelector('dd').textContent])));
      assert.equal(shown.Prompts, '7');
      assert.equal(shown.Sessions, '5');
      assert.equal(shown['Pull requests merged'], '1 of 2 opened');
      assert.equal(shown['Merge rate'], '50%');
      assert.equal(await page.locator('.chart svg path.series').count(), 5, 'three daily series and two latency lines');
      assert.ok((await page.locator('.chart svg path.series').first().getAttribute('d')).startsWith('M'));
      const file = await screenshot(page, 'metrics-page', { fullPage: true });
      process.stderr.write(`metrics page screenshot: ${file}\n`);
      assert.deepEqual(page.errors, []);
      // Someone without the metrics scope is told why.
      const other = await chrome.browser.newContext();
      await signInContext(other, people.alice.key);
      const refused = await other.newPage();
      await refused.goto(`${ctx.server.url}/#/metrics`);
      await refused.locator('.metrics-main [role=status]', { hasText: 'the metrics scope' }).waitFor();
    } finally {
      await chrome.close();
    }
  });

  test('humans prompting now counts a prompt still waiting, and only in its repository', { timeout: 60_000 }, async () => {
    await metrics(windowQuery());
    // Erin's prompt waits for a sandbox that never dials back: it has not ended, yet she is prompting.
    const erin = await createUser(ctx.server, 'Erin', { repos: ['acme/*'] });
    const waiting = await createSession(ctx.server, erin, { repo: 'acme/web', title: 'Still waiting', prompt: 'look at the header' });
    const now = (query) => eventually(async () => {
      const res = await api(ctx.server).get(`/v1/metrics?${query}`, { key: people.dana.key });
      assert.equal(res.status, 200, res.text);
      return res.json.humans_prompting_now === 4 && res.json;
    }, { what: 'Erin counted as prompting', ms: 15_000 });
    const all = await now(windowQuery());
    assert.equal(all.totals.prompts, script.prompts.length, 'her prompt has not ended, so it is not among the prompts yet');
    const web = await api(ctx.server).get(`/v1/metrics?${windowQuery()}&repo=acme/web`, { key: people.dana.key });
    assert.equal(web.json.humans_prompting_now, 2, 'Carol and Erin on acme/web');
    const demo = await api(ctx.server).get(`/v1/metrics?${windowQuery()}&repo=acme/demo`, { key: people.dana.key });
    assert.equal(demo.json.humans_prompting_now, 3, 'Alice, Bob and Carol (from Slack) on acme/demo');
    assert.equal((await api(ctx.server).post(`/v1/sessions/${waiting.session.id}/cancel`, { key: erin.key, body: { message_id: waiting.message_id } })).status, 200);
  });
});

describe('deep health', () => {
  test('needs the admin key, checks each dependency with a latency, and is kept for 30 s', async () => {
    const http = api(ctx.server);
    // The Slack session of the script asked auth.test for the bot's own id; count from here.
    const authTests = () => slack.callsOf('auth.test').length;
    const earlier = authTests();
    const shallow = await http.get('/health');
    assert.equal(shallow.json.status, 'healthy');
    assert.equal(shallow.json.deep, undefined);
    const refused = await http.get('/health?deep=1');
    assert.equal(refused.status, 401);
    assert.equal(refused.json.error.code, 'unauthorized');
    assert.equal(authTests(), earlier, 'nothing was checked for a caller without the key');

    const deep = (await http.get('/health?deep=1', { key: ctx.server.adminKey })).json.deep;
    assert.equal(deep.cached, false);
    assert.equal(deep.status, 'degraded', 'the classifier refuses its key');
    const { provider: p, github, slack: s, classifier: c } = deep.checks;
    assert.deepEqual([p.status, github.status, s.status, c.status], ['ok', 'ok', 'ok', 'failing']);
    for (const check of [p, github, s, c]) assert.ok(Number.isInteger(check.latency_ms) && check.latency_ms >= 0, JSON.stringify(check));
    assert.equal(p.detail, 'local recording');
    assert.equal(github.detail, 'fake-app');
    assert.equal(s.detail, 'Fake');
    assert.equal(c.detail, 'the classifier answered 401');
    assert.equal(authTests(), earlier + 1, 'Slack was asked auth.test once (with the bot token: the fake refuses any other)');
    assert.deepEqual(classifier.calls.map((call) => [call.method, call.url, call.authorization]), [['GET', '/v1/models', `Bearer ${classifierKey}`]]);
    assert.ok(fake.requests.some((r) => r.path.endsWith('/app') && r.method === 'GET'), 'GitHub was asked GET /app with the JWT');

    // Within 30 s anyone sees the kept result, and nothing is asked again.
    const again = await http.get('/health?deep=1');
    assert.equal(again.status, 200);
    assert.equal(again.json.deep.cached, true);
    assert.equal(again.json.deep.checked_at, deep.checked_at);
    assert.deepEqual(again.json.deep.checks, deep.checks);
    assert.equal(authTests(), earlier + 1);
    for (const secret of [slackToken, classifierKey, providerSecret]) assert.ok(!again.text.includes(secret));
  });
});

describe('logs', () => {
  test('one JSON line per request and per room action, with ids, routes, statuses and durations, and no secret', async () => {
    const { alice } = people;
    const session = await createSession(ctx.server, alice, { repo: 'acme/demo', title: 'Logged' });
    const sid = session.session.id;
    const posted = await api(ctx.server).post(`/v1/sessions/${sid}/prompts`, { key: alice.key, body: { content: 'log me' } });
    assert.equal(posted.status, 202);
    const lines = () => ctx.server.log().split('\n').flatMap((line) => {
      const start = line.indexOf('{"');
      if (start < 0) return [];
      try {
        return [JSON.parse(line.slice(start))];
      } catch {
        return [];
      }
    });
    const request = await eventually(() => lines().find((l) => l.kind === 'request' && l.route === '/v1/sessions/:id/prompts' && l.session_id === sid));
    assert.equal(request.method, 'POST');
    assert.equal(request.status, 202);
    assert.equal(request.level, 'info');
    assert.ok(Number.isInteger(request.duration_ms));
    assert.match(request.request_id, /\S+/);
    const action = await eventually(() => lines().find((l) => l.kind === 'room' && l.action === 'request' && l.request_id === request.request_id));
    assert.equal(action.session_id, sid);
    assert.equal(action.route, '/prompts');
    assert.equal(action.status, 202);
    assert.ok(lines().some((l) => l.kind === 'room' && l.action === 'prompt_finished' && l.status === 'completed'), 'prompt ends are logged');
    assert.ok(lines().some((l) => l.kind === 'request' && l.route === '/v1/metrics' && l.status === 403));

    // The dev proxy's own request lines ("[wrangler:info] GET /…?token=…") are not the Worker's log.
    const workerLog = ctx.server.log().split('\n').filter((line) => !/^\s*\[wrangler:/.test(line)).join('\n');
    const secrets = [ctx.server.adminKey, ctx.server.tokenSecret, providerSecret, webhookSecret, slackToken, classifierKey, session.token,
      ...Object.values(people).map((p) => p.key), ...provider.creates.map((c) => c.sandbox_token), ...fake.issued, keys.pkcs8.split('\n')[1]];
    for (const secret of secrets) assert.ok(!workerLog.includes(secret), `a secret (${secret.slice(0, 6)}…) is in the log`);
  });
});
