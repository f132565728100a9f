// Slack with GitHub: the final reply offers "Create pull request", and a click opens it as
// whoever clicked, through the same code as `POST /v1/sessions/:id/pull-request`, answered in
// the thread. The fake GitHub's App opens it (PR_AS_APP_FALLBACK); the test speaks as the
// bridge through the recording provider.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
import { allEvents, api, createUser, eventually, rid, useServer } from './support/server.mjs';
import { dialBridge, nthCreate, startRecordingProvider } from './support/sandbox.mjs';
import { appKeyPair, startFakeGithub } from './support/fake-github.mjs';
import { slackHeaders, startFakeSlack } from './support/fake-slack.mjs';

const providerSecret = randomBytes(24).toString('base64url');
const signingSecret = randomBytes(16).toString('hex');
const botToken = `xoxb-${randomBytes(12).toString('hex')}`;
const keys = appKeyPair();
let github;
let slack;
let provider;

const ctx = useServer({
  vars: async () => {
    github = await startFakeGithub({ appId: 91, publicKey: keys.publicKey, clientId: 'unused', clientSecret: 'unused', installations: [{ account: 'acme', repos: ['acme/demo'] }] });
    slack = await startFakeSlack({ botToken, channels: { CDEMO: 'demo' } });
    provider = await startRecordingProvider({ secret: providerSecret });
    return {
      PROVIDER: 'local',
      PROVIDER_URL: provider.url,
      PROVIDER_SECRET: providerSecret,
      GITHUB_APP_ID: '91',
      GITHUB_APP_PRIVATE_KEY: keys.pkcs8,
      GITHUB_API_URL: github.apiUrl,
      GITHUB_WEB_URL: github.url,
      GIT_HOST: `${github.url}/git`,
      PR_AS_APP_FALLBACK: 'true',
      SLACK_SIGNING_SECRET: signingSecret,
      SLACK_BOT_TOKEN: botToken,
      SLACK_API_URL: slack.apiUrl,
      SLACK_CHANNEL_REPOS: 'CDEMO=acme/demo',
      PUBLIC_URL: 'https://coordinator.example',
    };
  },
});

after(async () => {
  await provider?.stop();
  await slack?.stop();
  await github?.stop();
});

async function person(name) {
  const user = await createUser(ctx.server, name, { repos: ['acme/*'] });
  const slackId = `U${name.toUpperCase()}`;
  slack.users[slackId] = { name: name.toLowerCase(), real_name: name, email: user.user.email };
  return { ...user, slackId };
}

async function signed(path, body, contentType) {
  return api(ctx.server).post(path, { raw: body, headers: { 'content-type': contentType, ...slackHeaders(signingSecret, body) } });
}

test('"Create pull request" in the reply opens it as whoever clicks, and says so in the thread', async () => {
  const ada = await person('Ada');
  const bob = await person('Bob');
  const message = slack.userMessage('CDEMO', { user: ada.slackId, text: '<@UBOT> add a readme' });
  const creates = provider.creates.length + 1;
  const event = { type: 'event_callback', team_id: slack.teamId, event_id: 'EvPR1', event: { ...message, type: 'app_mention', channel: 'CDEMO' }, authorizations: [{ user_id: 'UBOT', is_bot: true }] };
  assert.equal((await signed('/v1/slack/events', JSON.stringify(event), 'application/json')).status, 200);

  // The test is the sandbox: the prompt comes, the work is pushed, the prompt ends.
  const create = await nthCreate(provider, creates);
  const sid = create.session_id;
  const bridge = ctx.clients.add(await dialBridge(ctx.server, sid, { token: create.sandbox_token, sandboxId: create.sandbox_id }));
  bridge.send({ type: 'ready', sandbox_id: create.sandbox_id, agent: 'test', agent_version: '1' });
  const prompt = await bridge.waitFor((f) => f.type === 'prompt', 15_000);
  assert.equal(prompt.author.email, ada.user.email, 'the prompt is Ada\'s');
  const acks = [rid('edit'), rid('push'), rid('done')];
  bridge.send({ type: 'token', message_id: prompt.message_id, delta: 'Added **README.md**.' });
  bridge.send({ type: 'file_edit', message_id: prompt.message_id, path: 'README.md', diff: '+# Demo', ack_id: acks[0] });
  bridge.send({ type: 'pushed', message_id: prompt.message_id, branch: prompt.push_branch, commit: 'c0ffee', files_changed: 1, additions: 1, deletions: 0, ack_id: acks[1] });
  bridge.send({ type: 'done', message_id: prompt.message_id, ok: true, ack_id: acks[2] });

  const reply = await eventually(() => slack.botPosts('CDEMO', message.ts).find((p) => p.blocks?.some((b) => b.block_id === 'answer')), { ms: 20_000, what: 'the final reply' });
  assert.equal(reply.blocks.find((b) => b.block_id === 'answer').text.text, 'Added *README.md*.');
  assert.ok(reply.blocks.some((b) => b.text?.text === `*Branch:* <${github.url}/acme/demo/tree/agent/${sid}|agent/${sid}>`), JSON.stringify(reply.blocks));
  assert.equal(reply.blocks.find((b) => b.block_id === 'files').text.text, '*Files changed:* `README.md`');
  const buttons = reply.blocks.find((b) => b.block_id === 'session').elements;
  assert.equal(buttons[0].url, `https://coordinator.example/#/s/${sid}`);
  const button = buttons.find((b) => b.action_id === 'create_pr');
  assert.equal(button.value, sid);

  // Bob clicks it: he becomes a member and the pull request is his.
  const payload = {
    type: 'block_actions',
    user: { id: bob.slackId, team_id: slack.teamId },
    team: { id: slack.teamId },
    channel: { id: 'CDEMO' },
    container: { type: 'message', message_ts: reply.ts, channel_id: 'CDEMO' },
    message: { ts: reply.ts, thread_ts: message.ts },
    actions: [{ action_id: button.action_id, value: button.value, type: 'button', block_id: 'session' }],
  };
  const clicked = await signed('/v1/slack/interactions', new URLSearchParams({ payload: JSON.stringify(payload) }).toString(), 'application/x-www-form-urlencoded');
  assert.equal(clicked.status, 200, clicked.text);
  const said = await eventually(() => slack.botPosts('CDEMO', message.ts).find((p) => /Pull request/.test(p.text ?? '')), { ms: 15_000, what: 'the answer in the thread' });
  const pr = github.pulls.get('acme/demo').at(-1);
  assert.equal(pr.head, `agent/${sid}`);
  assert.match(said.text, new RegExp(`opened by Bob`));
  assert.match(said.text, /#\d+>/);
  const artifact = (await allEvents(ctx.server, bob, sid)).filter((e) => e.type === 'artifact_created' && e.artifact.type === 'pr').at(-1);
  assert.deepEqual(artifact.artifact.data.opened_by, { user_id: bob.id, name: 'Bob', github_login: null });
  // Clicked again: the open pull request is found, not opened twice.
  await signed('/v1/slack/interactions', new URLSearchParams({ payload: JSON.stringify(payload) }).toString(), 'application/x-www-form-urlencoded');
  await eventually(() => slack.botPosts('CDEMO', message.ts).find((p) => /already open/.test(p.text ?? '')), { ms: 15_000, what: 'already open' });
  assert.equal(github.pulls.get('acme/demo').filter((p) => p.head === `agent/${sid}`).length, 1);
});
