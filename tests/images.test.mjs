// Repository images rebuilt when the branch moves, scheduled by the coordinator's cron: the
// Worker under `wrangler dev --test-scheduled` (the cron fired with `GET /__scheduled`), the real
// local provider building images from its git host, and the `dev` agent in a real sandbox.
// A first run builds; a run with the head unchanged builds nothing; a commit pushed to the
// bare repository (the head moves) is built and recorded; the next session's sandbox starts
// from that image (its workspace holds the image's marker and commit, though the branch has
// moved on since); a repository whose clone fails shows its failed build in GET /v1/repos.
//
// Slow by nature (workerd, a provider, a bridge, git); every wait is for a state.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { allEvents, api, createUser, eventually, freePort, useServer } from './support/server.mjs';
import { addCommit, gitIn, makeBareRepo } from './support/git-http.mjs';
import { startLocalProvider } from './support/sandbox.mjs';

const secret = randomBytes(24).toString('base64url');
const providerPort = await freePort();
const gitRoot = await mkdtemp(path.join(os.tmpdir(), 'images-git-'));
makeBareRepo(gitRoot, 'acme/demo');
// A repository whose head can be read but not cloned: its objects are gone.
makeBareRepo(gitRoot, 'acme/broken');
for (const entry of await readdir(path.join(gitRoot, 'acme/broken.git/objects'))) {
  if (/^[0-9a-f]{2}$/.test(entry)) await rm(path.join(gitRoot, 'acme/broken.git/objects', entry), { recursive: true });
}
let provider = null;

const ctx = useServer({
  vars: {
    PROVIDER: 'local',
    PROVIDER_URL: `http://127.0.0.1:${providerPort}`,
    PROVIDER_SECRET: secret,
    GIT_HOST: `http://127.0.0.1:${providerPort}/git`,
    // Every run of the cron looks at every head, so the test need not wait for minutes.
    IMAGE_REFRESH_MINUTES: '0',
    REPOS: JSON.stringify([
      { name: 'acme/demo', description: 'demo', default_branch: 'main' },
      { name: 'acme/broken', description: 'cannot be cloned', default_branch: 'main' },
    ]),
  },
});

before(async () => {
  provider = await startLocalProvider({ port: providerPort, secret, gitRoot });
});

after(async () => {
  await provider?.stop();
  await rm(gitRoot, { recursive: true, force: true });
});

/** Fires the cron as the platform would; it answers once the handler is done. */
async function cron() {
  const res = await fetch(`${ctx.server.url}/__scheduled?cron=${encodeURIComponent('*/5 * * * *')}`);
  assert.equal(res.status, 200, await res.text());
}

async function images(user) {
  const res = await api(ctx.server).get('/v1/repos', { key: user.key });
  assert.equal(res.status, 200, res.text);
  return Object.fromEntries(res.json.repos.map((r) => [r.name, r.image]));
}

/** Fires the cron until `repo`'s newest build is no longer building → that build. */
async function settled(user, repo) {
  return eventually(
    async () => {
      await cron();
      const image = (await images(user))[repo];
      return image && image.status !== 'building' ? image : null;
    },
    { ms: 60_000, every: 500, what: `the build of ${repo} finished` },
  );
}

test('the cron builds an image when the head moves, records it, and the next sandbox starts from it; a failed build is shown', { timeout: 240_000 }, async () => {
  const dev = await createUser(ctx.server, 'Dev', { repos: ['acme/*'] });
  const git = (...args) => gitIn(gitRoot, 'acme/demo', args);
  const first = git('rev-parse', 'refs/heads/main');

  const before = await images(dev);
  assert.equal(before['acme/demo'], null, 'no build before the first run');

  // The first run asks for a build of the head.
  await cron();
  const started = (await images(dev))['acme/demo'];
  assert.equal(started.commit, first);
  assert.ok(['building', 'ready'].includes(started.status), JSON.stringify(started));
  const built = await settled(dev, 'acme/demo');
  assert.equal(built.status, 'ready', JSON.stringify(built));
  assert.equal(built.commit, first);
  assert.equal(built.error, null);
  assert.ok(built.finished_at);

  // The head did not move: another run builds nothing.
  await cron();
  await cron();
  assert.deepEqual((await images(dev))['acme/demo'], built);

  // A repository whose clone fails: its build is failed, with git's reason, and stays shown.
  const broken = await settled(dev, 'acme/broken');
  assert.equal(broken.status, 'failed', JSON.stringify(broken));
  assert.match(broken.error, /clone|object|fatal/i, broken.error);
  await cron();
  assert.deepEqual((await images(dev))['acme/broken'], broken, 'a failure of the same head is not retried at once');

  // The fake head moves: the next run builds the new commit.
  const second = addCommit(gitRoot, 'acme/demo', 'NEWS.md', 'moved\n');
  await cron();
  const rebuilt = await settled(dev, 'acme/demo');
  assert.equal(rebuilt.status, 'ready', JSON.stringify(rebuilt));
  assert.equal(rebuilt.commit, second);
  assert.notEqual(rebuilt.started_at, built.started_at);

  // The branch moves again, with no run in between: a new session starts from the image (the
  // second commit), not from a fresh clone (the third), and still works on its session branch.
  const third = addCommit(gitRoot, 'acme/demo', 'LATER.md', 'later\n');
  const created = await api(ctx.server).post('/v1/sessions', {
    key: dev.key,
    body: {
      repo: 'acme/demo',
      title: 'from the image',
      prompt: ['$ cat .git/sandbox-image.used', '$ git log -1 --format=%H', 'write from-image.txt: yes'].join('\n'),
    },
  });
  assert.equal(created.status, 201, created.text);
  const sid = created.json.session.id;
  const finished = await eventually(async () => (await allEvents(ctx.server, dev, sid)).find((e) => e.type === 'prompt_finished'), {
    ms: 90_000,
    what: 'the prompt finished',
  });
  assert.equal(finished.status, 'completed', JSON.stringify(finished));
  const events = await allEvents(ctx.server, dev, sid);
  const tools = events.filter((e) => e.type === 'tool_call' && e.status !== 'running');
  assert.equal(tools.length, 2, JSON.stringify(tools));
  const marker = JSON.parse(tools[0].output.trim());
  assert.equal(marker.commit, second, tools[0].output);
  assert.match(marker.image_id, /^img_/);
  assert.equal(tools[1].output.trim(), second, 'the workspace is at the image’s commit');
  assert.notEqual(second, third);

  // The bridge took the image's repository up as its clone: the session branch is pushed to the
  // git host, on top of the image's commit.
  const pushed = await eventually(() => events.find((e) => e.type === 'artifact_created' && e.artifact.type === 'branch'), {
    what: 'the branch artifact',
  });
  assert.equal(pushed.artifact.data.name, `agent/${sid}`);
  assert.equal(git('rev-parse', `agent/${sid}^`), second);
  assert.equal(git('show', `agent/${sid}:from-image.txt`), 'yes');
});
