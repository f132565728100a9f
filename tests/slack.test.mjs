// Slack against a fake Web API and a fake model at the network boundary
// (tests/support/fake-slack.mjs), with correctly signed requests, against the built Worker
// with the real local provider (`bridge provider`) and the `dev` agent: a mention starts a
// session on the classified repository and ends with a Block Kit reply whose answer is the
// session's stored text; a follow-up in the thread goes to the same session with the messages
// posted in between; an ambiguous request gets the picker, whose choice starts the session;
// forged, stale and replayed requests; the bot's own messages; an unknown Slack user; a model
// that times out; a 429 from Slack, retried after Retry-After, with the reply posted once; a
// post whose answer was lost, found again rather than posted twice; direct messages; and an
// archived session's thread starting a new session.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { allEvents, api, createUser, eventually, freePort, useServer } from './support/server.mjs';
import { startLocalProvider } from './support/sandbox.mjs';
import { slackHeaders, startFakeClassifier, startFakeSlack } from './support/fake-slack.mjs';

const providerSecret = randomBytes(24).toString('base64url');
const signingSecret = randomBytes(16).toString('hex');
const botToken = `xoxb-${randomBytes(12).toString('hex')}`;
const BOT = 'UBOT';
let slack;
let model;
let provider;
let providerPort;

const ctx = useServer({
  vars: async () => {
    providerPort = await freePort();
    slack = await startFakeSlack({ botToken, botUserId: BOT, channels: { CGEN: 'general', CDEMO: 'demo-team', DADA: 'ada-dm', DDEE: 'dee-dm' } });
    model = await startFakeClassifier();
    return {
      PROVIDER: 'local',
      PROVIDER_URL: `http://127.0.0.1:${providerPort}`,
      PROVIDER_SECRET: providerSecret,
      SLACK_SIGNING_SECRET: signingSecret,
      SLACK_BOT_TOKEN: botToken,
      SLACK_API_URL: slack.apiUrl,
      SLACK_CHANNEL_REPOS: 'CDEMO=acme/demo',
      CLASSIFIER_URL: `${model.url}/v1`,
      CLASSIFIER_MODEL: 'fast-router',
      CLASSIFIER_API_KEY: 'sk-classifier-test',
      CLASSIFIER_TIMEOUT_MS: '800',
    };
  },
});

after(async () => {
  await provider?.stop();
  await slack?.stop();
  await model?.stop();
});

async function ensureProvider() {
  provider ??= await startLocalProvider({ port: providerPort, secret: providerSecret, env: { HEARTBEAT_SECS: '1' } });
}

let counter = 0;
/** A coordinator user and the Slack user with the same email (in another case). */
async function person(name, scopes = { repos: ['acme/*'] }) {
  const user = await createUser(ctx.server, name, scopes);
  counter += 1;
  const slackId = `U${name.toUpperCase().replace(/[^A-Z]/g, '')}${counter}`;
  slack.users[slackId] = { name: name.toLowerCase(), real_name: name, email: user.user.email.toUpperCase() };
  return { ...user, slackId };
}

/** Posts a signed body to a Slack endpoint → {status, json, ms}. */
async function signed(path, body, { contentType = 'application/json', headers = {}, at } = {}) {
  const started = Date.now();
  const res = await api(ctx.server).post(path, { raw: body, headers: { 'content-type': contentType, ...slackHeaders(signingSecret, body, at), ...headers } });
  return { ...res, ms: Date.now() - started };
}

/** A person writes `text` (a mention of the bot unless told) and Slack delivers the event. */
async function say(who, channel, text, { thread_ts, mention = true, type, eventId = `Ev${randomBytes(6).toString('hex')}` } = {}) {
  const message = slack.userMessage(channel, { user: who.slackId, text: mention ? `<@${BOT}> ${text}` : text, thread_ts });
  const event = { ...message, channel, event_ts: message.ts, type: type ?? (channel.startsWith('D') ? 'message' : 'app_mention') };
  if (channel.startsWith('D')) event.channel_type = 'im';
  const payload = { token: 'unused', team_id: slack.teamId, api_app_id: 'A1', type: 'event_callback', event_id: eventId, event_time: Math.floor(Date.now() / 1000), event, authorizations: [{ team_id: slack.teamId, user_id: BOT, is_bot: true }] };
  const body = JSON.stringify(payload);
  const sentAt = Date.now();
  const res = await signed('/v1/slack/events', body);
  return { message, payload, body, res, sentAt, thread: thread_ts ?? message.ts };
}

const finalOf = (post) => post.blocks?.find?.((b) => b.block_id === 'answer');
const finals = (channel, thread) => slack.botPosts(channel, thread).filter((p) => finalOf(p));
async function finalReply(channel, thread, n = 1) {
  return eventually(() => finals(channel, thread).length >= n && finals(channel, thread)[n - 1], { ms: 60_000, what: `final reply ${n} in ${thread}` });
}

async function sessionsOf(user) {
  return (await api(ctx.server).get('/v1/sessions', { key: user.key })).json.sessions;
}

/** The stored text the agent streamed for a prompt. */
function storedText(events, messageId) {
  return events.filter((e) => e.type === 'token' && e.message_id === messageId).map((e) => e.delta).join('');
}

describe('Slack', () => {
  test('a mention starts a session on the classified repository; the reply is Block Kit with the stored answer', async (t) => {
    await ensureProvider();
    const ada = await person('Ada');
    model.delayMs = 0;
    model.answer = () => ({ repo: 'acme/web', confidence: 0.92, reason: 'the login page lives in the web app' });
    const asked = await say(ada, 'CGEN', 'the login button does nothing\nwrite notes.txt: looked at the login');
    assert.equal(asked.res.status, 200, asked.res.text);
    assert.ok(asked.res.ms < 3000, `answered in ${asked.res.ms} ms`);
    const reply = await finalReply('CGEN', asked.thread);
    const [session] = await eventually(async () => (await sessionsOf(ada)).length === 1 && sessionsOf(ada), { what: 'the session' });
    assert.equal(session.repo, 'acme/web');
    assert.equal(session.title, 'the login button does nothing');
    // The model was given the candidates, the channel's name and the thread, with its key.
    const asks = model.requests.filter((r) => JSON.stringify(r.body).includes('the login button does nothing'));
    assert.equal(asks.length, 1);
    assert.equal(asks[0].body.model, 'fast-router');
    assert.deepEqual(asks[0].body.response_format, { type: 'json_object' });
    assert.equal(asks[0].authorization, 'Bearer sk-classifier-test');
    assert.match(asks[0].body.messages[1].content, /#general/);
    assert.match(asks[0].body.messages[1].content, /acme\/demo/);
    // The prompt is Ada's, from Slack, with the thread's permalink.
    const events = await allEvents(ctx.server, ada, session.id);
    const message = events.find((e) => e.type === 'message');
    assert.equal(message.source, 'slack');
    assert.equal(message.author.name, 'Ada');
    assert.equal(message.content, 'the login button does nothing\nwrite notes.txt: looked at the login');
    const thread = message.attachments.find((a) => a.type === 'slack_thread');
    assert.match(thread.permalink, /^https:\/\/fake\.slack\.example\/archives\/CGEN\/p/);
    const finished = events.find((e) => e.type === 'prompt_finished');
    assert.equal(finished.status, 'completed');
    // The answer is the session's stored text; the files and the buttons follow.
    const stored = storedText(events, message.message_id);
    assert.ok(stored.length > 0);
    assert.equal(finalOf(reply).text.text, stored.trim());
    assert.match(reply.blocks.find((b) => b.block_id === 'files').text.text, /notes\.txt/);
    const buttons = reply.blocks.find((b) => b.block_id === 'session').elements;
    assert.equal(buttons[0].url, `${ctx.server.url}/#/s/${session.id}`);
    assert.equal(buttons.length, 1, 'no Create pull request without GitHub');
    assert.equal(reply.thread_ts, asked.thread);
    assert.equal(reply.metadata.event_payload.key, `${message.message_id}:final`);
    // One status message, updated in place, at most once every 3 s, ending done.
    const statuses = slack.botPosts('CGEN', asked.thread).filter((p) => !finalOf(p) && p.metadata?.event_payload?.key?.endsWith(':status'));
    assert.equal(statuses.length, 1);
    const status = statuses[0];
    await eventually(() => /done/.test(status.text), { ms: 10_000, what: 'the status says done' });
    const postOf = (key) => slack.callsOf('chat.postMessage').find((c) => c.body.metadata?.event_payload?.key === key);
    const statusPost = postOf(status.metadata.event_payload.key);
    assert.match(statusPost.body.text, /queued/);
    const times = [statusPost.at, ...status.updates.map((u) => u.at)];
    for (let i = 1; i < times.length; i++) assert.ok(times[i] - times[i - 1] >= 2900, `updates ${times[i] - times[i - 1]} ms apart`);
    // By the fake's clock: the event, the first status message, the final reply.
    const firstStatusAt = statusPost.at;
    const finalAt = postOf(reply.metadata.event_payload.key).at;
    t.diagnostic(`event → first status ${firstStatusAt - asked.sentAt} ms, → final reply ${finalAt - asked.sentAt} ms`);
    // The bot's token never left the Authorization header.
    assert.ok(!ctx.server.log().includes(botToken));
  });

  test('a follow-up in the thread goes to the same session, with the messages posted in between', async () => {
    await ensureProvider();
    const grace = await person('Grace');
    const bob = await person('Bob', { repos: [] });
    const first = await say(grace, 'CGEN', 'repo:acme/demo tidy the readme');
    await finalReply('CGEN', first.thread);
    const [session] = await sessionsOf(grace);
    assert.equal(session.repo, 'acme/demo');
    slack.userMessage('CGEN', { user: bob.slackId, text: 'it is the second paragraph', thread_ts: first.thread });
    slack.userMessage('CGEN', { user: grace.slackId, text: 'and keep it short', thread_ts: first.thread });
    const second = await say(grace, 'CGEN', 'also fix the footer', { thread_ts: first.thread });
    assert.equal(second.res.status, 200);
    await finalReply('CGEN', first.thread, 2);
    assert.equal((await sessionsOf(grace)).length, 1, 'no second session');
    const messages = (await allEvents(ctx.server, grace, session.id)).filter((e) => e.type === 'message');
    assert.equal(messages.length, 2);
    assert.equal(messages[1].content, 'also fix the footer');
    assert.equal(messages[1].source, 'slack');
    const between = messages[1].attachments.find((a) => a.type === 'slack_messages');
    assert.deepEqual(between.messages.map((m) => [m.author, m.text]), [['Bob', 'it is the second paragraph'], ['Grace', 'and keep it short']]);
    // The first prompt carried no earlier messages: the thread started with it.
    assert.equal(messages[0].attachments.find((a) => a.type === 'slack_messages'), undefined);
  });

  test('an ambiguous request gets the picker, and the choice starts the session', async () => {
    await ensureProvider();
    const lin = await person('Lin');
    model.delayMs = 0;
    model.answer = () => ({ repo: null, confidence: 0.2, reason: 'could be either' });
    const asked = await say(lin, 'CGEN', 'the flaky thing is back');
    const picker = await eventually(() => slack.botPosts('CGEN', asked.thread).find((p) => p.blocks?.some((b) => b.block_id === 'picker')), { ms: 15_000, what: 'the picker' });
    const choices = picker.blocks.find((b) => b.block_id === 'picker').elements;
    assert.deepEqual(choices.map((c) => c.value).sort(), ['acme/demo', 'acme/web']);
    assert.equal((await sessionsOf(lin)).length, 0);
    const payload = {
      type: 'block_actions',
      user: { id: lin.slackId, team_id: slack.teamId },
      team: { id: slack.teamId },
      channel: { id: 'CGEN' },
      container: { type: 'message', message_ts: picker.ts, channel_id: 'CGEN', is_ephemeral: false },
      message: { ts: picker.ts, thread_ts: asked.thread, text: picker.text },
      actions: [{ action_id: choices.find((c) => c.value === 'acme/demo').action_id, block_id: 'picker', value: 'acme/demo', type: 'button', action_ts: '1' }],
    };
    const body = new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
    const res = await signed('/v1/slack/interactions', body, { contentType: 'application/x-www-form-urlencoded' });
    assert.equal(res.status, 200, res.text);
    assert.ok(res.ms < 3000);
    await finalReply('CGEN', asked.thread);
    const [session] = await sessionsOf(lin);
    assert.equal(session.repo, 'acme/demo');
    assert.match(picker.text, /Working on it in `acme\/demo`/);
    const message = (await allEvents(ctx.server, lin, session.id)).find((e) => e.type === 'message');
    assert.equal(message.content, 'the flaky thing is back');
  });

  test('the channel\'s repository is used without asking the model', async () => {
    await ensureProvider();
    const kim = await person('Kim');
    const before = model.requests.length;
    const asked = await say(kim, 'CDEMO', 'the build is slow');
    await finalReply('CDEMO', asked.thread);
    assert.equal((await sessionsOf(kim))[0].repo, 'acme/demo');
    assert.equal(model.requests.length, before);
  });

  test('in a direct message every message is a request, and a reply in its thread a follow-up', async () => {
    await ensureProvider();
    const dee = await person('Dee');
    const first = await say(dee, 'DDEE', 'repo:acme/demo list the files', { mention: false });
    assert.equal(first.res.status, 200, first.res.text);
    await finalReply('DDEE', first.thread);
    const second = await say(dee, 'DDEE', 'and count them', { mention: false, thread_ts: first.thread });
    assert.equal(second.res.status, 200);
    await finalReply('DDEE', first.thread, 2);
    const sessions = await sessionsOf(dee);
    assert.equal(sessions.length, 1);
    const messages = (await allEvents(ctx.server, dee, sessions[0].id)).filter((e) => e.type === 'message');
    assert.deepEqual(messages.map((m) => m.content), ['repo:acme/demo list the files', 'and count them']);
  });

  test('a mention in the thread of an archived session starts a new session', async () => {
    await ensureProvider();
    const ola = await person('Ola');
    const first = await say(ola, 'CDEMO', 'write a haiku');
    await finalReply('CDEMO', first.thread);
    const [old] = await sessionsOf(ola);
    assert.equal((await api(ctx.server).del(`/v1/sessions/${old.id}`, { key: ola.key })).status, 200);
    await say(ola, 'CDEMO', 'another one', { thread_ts: first.thread });
    await finalReply('CDEMO', first.thread, 2);
    const sessions = await sessionsOf(ola);
    assert.equal(sessions.length, 2);
    const fresh = sessions.find((s) => s.id !== old.id);
    assert.equal(fresh.status, 'active');
    const [message] = (await allEvents(ctx.server, ola, fresh.id)).filter((e) => e.type === 'message');
    assert.equal(message.content, 'another one');
  });

  test('a post whose answer was lost is found in the thread, not posted again', async () => {
    await ensureProvider();
    const pat = await person('Pat');
    slack.failNext('chat.postMessage', { lose: true, match: (body) => body.metadata?.event_payload?.key?.endsWith(':final') });
    const asked = await say(pat, 'CDEMO', 'rename the thing');
    const reply = await finalReply('CDEMO', asked.thread);
    const key = reply.metadata.event_payload.key;
    // The room looks the post up by its key before anything else is sent for it.
    const lost = slack.callsOf('chat.postMessage').find((c) => c.body.metadata?.event_payload?.key === key);
    await eventually(() => slack.callsOf('conversations.replies').some((c) => c.body.ts === asked.thread && c.body.include_all_metadata === 'true' && c.at >= lost.at), { ms: 15_000, what: 'the look-up' });
    const status = slack.botPosts('CDEMO', asked.thread).find((p) => p.metadata?.event_payload?.key?.endsWith(':status'));
    await eventually(() => /done/.test(status.text), { ms: 15_000, what: 'the status says done' });
    assert.equal(finals('CDEMO', asked.thread).length, 1, 'posted once');
    const attempts = slack.callsOf('chat.postMessage').filter((c) => c.body.metadata?.event_payload?.key === key);
    assert.deepEqual(attempts.map((c) => c.status), [500]);
  });

  test('/health shows Slack, and ?deep=1 checks auth.test', async () => {
    const shallow = await api(ctx.server).get('/health');
    assert.deepEqual(shallow.json.slack, { classifier: true, channels: 1 });
    assert.equal(shallow.json.deep, undefined);
    const before = slack.callsOf('auth.test').length;
    const deep = await api(ctx.server).get('/health?deep=1', { key: ctx.server.adminKey });
    const check = deep.json.deep.checks.slack;
    assert.equal(check.status, 'ok', JSON.stringify(deep.json));
    assert.equal(typeof check.latency_ms, 'number');
    assert.equal(slack.callsOf('auth.test').length, before + 1);
    assert.ok(!deep.text.includes(botToken) && !deep.text.includes(signingSecret));
  });

  test('a bad signature and a stale timestamp are refused; a replayed event_id is ignored', async () => {
    const eve = await person('Eve');
    const body = JSON.stringify({ type: 'url_verification', challenge: 'c-123', token: 'x' });
    const ok = await signed('/v1/slack/events', body);
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.json, { challenge: 'c-123' });
    const forged = await api(ctx.server).post('/v1/slack/events', { raw: body, headers: slackHeaders('not-the-secret', body) });
    assert.equal(forged.status, 401);
    assert.equal(forged.json.error.code, 'unauthorized');
    const stale = await signed('/v1/slack/events', body, { at: Math.floor(Date.now() / 1000) - 301 });
    assert.equal(stale.status, 401);
    assert.match(stale.json.error.message, /300 s/);
    const unsigned = await api(ctx.server).post('/v1/slack/events', { raw: body });
    assert.equal(unsigned.status, 401);
    const tampered = await api(ctx.server).post('/v1/slack/events', { raw: body.replace('c-123', 'c-999'), headers: slackHeaders(signingSecret, body) });
    assert.equal(tampered.status, 401);
    const form = new URLSearchParams({ payload: '{}' }).toString();
    const forgedAction = await api(ctx.server).post('/v1/slack/interactions', { raw: form, headers: { 'content-type': 'application/x-www-form-urlencoded', ...slackHeaders('nope', form) } });
    assert.equal(forgedAction.status, 401);
    // A replay: the same event again (as Slack's retry, and once more without the header).
    const asked = await say(eve, 'CDEMO', 'add a changelog');
    assert.equal(asked.res.status, 200);
    const retried = await signed('/v1/slack/events', asked.body, { headers: { 'x-slack-retry-num': '1', 'x-slack-retry-reason': 'http_timeout' } });
    assert.equal(retried.status, 200);
    assert.equal(retried.json.duplicate, true);
    const replayed = await signed('/v1/slack/events', asked.body);
    assert.equal(replayed.json.duplicate, true);
    await finalReply('CDEMO', asked.thread);
    assert.equal((await sessionsOf(eve)).length, 1);
    assert.equal(finals('CDEMO', asked.thread).length, 1);
  });

  test("the bot's own messages and other bots' are ignored", async () => {
    const callsBefore = slack.calls.length;
    const own = slack.userMessage('DADA', { user: BOT, text: 'status: queued' });
    for (const event of [
      { ...own, channel: 'DADA', channel_type: 'im', type: 'message', bot_id: 'BBOT' },
      { ...own, channel: 'DADA', channel_type: 'im', type: 'message' },
      { type: 'message', subtype: 'bot_message', bot_id: 'B2', text: 'beep', ts: own.ts, channel: 'DADA', channel_type: 'im' },
      { type: 'app_mention', user: 'UOTHER', bot_id: 'B3', text: `<@${BOT}> hi`, ts: own.ts, channel: 'CGEN' },
    ]) {
      const body = JSON.stringify({ type: 'event_callback', team_id: slack.teamId, event_id: `Ev${randomBytes(6).toString('hex')}`, event, authorizations: [{ user_id: BOT, is_bot: true }] });
      const res = await signed('/v1/slack/events', body);
      assert.equal(res.status, 200);
      assert.ok(res.json.ignored, JSON.stringify(res.json));
    }
    await new Promise((r) => setTimeout(r, 1000));
    // Nothing was asked of Slack for them (other tests' rooms may still be updating theirs).
    const theirs = slack.calls.slice(callsBefore).filter((c) => c.body?.channel === 'DADA' || ['UOTHER', BOT].includes(c.body?.user));
    assert.deepEqual(theirs.map((c) => c.method), []);
  });

  test('an unknown Slack user gets a reply in the thread and no session', async () => {
    slack.users.USTRANGER = { name: 'stranger', email: 'stranger@elsewhere.example' };
    const stranger = { slackId: 'USTRANGER' };
    const asked = await say(stranger, 'CGEN', 'delete the database');
    assert.equal(asked.res.status, 200);
    const notice = await eventually(() => slack.botPosts('CGEN', asked.thread)[0], { what: 'the notice' });
    assert.match(notice.text, /I don't know you yet/);
    assert.match(notice.text, /stranger@elsewhere\.example/);
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(slack.botPosts('CGEN', asked.thread).length, 1, 'only the notice');
  });

  test('a model that times out falls back to the picker', async () => {
    const max = await person('Max');
    model.delayMs = 3000;
    model.answer = () => ({ repo: 'acme/web', confidence: 0.99, reason: 'too late' });
    const asked = await say(max, 'CGEN', 'something is off with the numbers');
    const picker = await eventually(() => slack.botPosts('CGEN', asked.thread).find((p) => p.blocks?.some((b) => b.block_id === 'picker')), { ms: 15_000, what: 'the picker' });
    assert.ok(picker);
    model.delayMs = 0;
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal((await sessionsOf(max)).length, 0, 'the late answer started nothing');
  });

  test('a 429 from Slack is retried after Retry-After, and the reply appears once', async () => {
    await ensureProvider();
    const ivy = await person('Ivy');
    slack.failNext('chat.postMessage', { status: 429, retryAfter: 2, match: (body) => body.metadata?.event_payload?.key?.endsWith(':final') });
    const asked = await say(ivy, 'CDEMO', 'bump the version');
    await finalReply('CDEMO', asked.thread);
    await new Promise((r) => setTimeout(r, 3500));
    assert.equal(finals('CDEMO', asked.thread).length, 1, 'posted once');
    const finalCalls = slack.callsOf('chat.postMessage').filter((c) => c.body.thread_ts === asked.thread && c.body.metadata?.event_payload?.key?.endsWith(':final'));
    assert.deepEqual(finalCalls.map((c) => c.status), [429, 200]);
    assert.ok(finalCalls[1].at - finalCalls[0].at >= 2000, `retried after ${finalCalls[1].at - finalCalls[0].at} ms`);
  });
});
