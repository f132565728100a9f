// A fake Slack at the network boundary: a Node HTTP server speaking the Web API methods the
// coordinator calls (auth.test, users.info, conversations.info, conversations.replies,
// chat.postMessage, chat.update, chat.getPermalink) with Slack's shapes: POST with a JSON or
// form body, `Authorization: Bearer <bot token>` checked, `{ok: false, error}` refusals, and
// 429 with `Retry-After` on demand. It keeps the channels' messages, so threads read back
// what was posted, and records every call with the fake's clock. Also: the signing of
// requests as Slack sends them, and a fake model server for the repository classifier.

import { createHmac } from 'node:crypto';
import http from 'node:http';

/** The `X-Slack-Request-Timestamp` and `X-Slack-Signature` headers of a body. */
export function slackHeaders(secret, body, at = Math.floor(Date.now() / 1000)) {
  const signature = `v0=${createHmac('sha256', secret).update(`v0:${at}:${body}`).digest('hex')}`;
  return { 'x-slack-request-timestamp': String(at), 'x-slack-signature': signature };
}

function readBody(req) {
  return new Promise((resolve) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => resolve(data));
  });
}

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

/**
 * Starts the fake Slack. `users` maps a Slack user id to {name, real_name?, email?,
 * is_bot?}; `channels` maps a channel id to its name.
 */
export async function startFakeSlack({ botToken, botUserId = 'UBOT', botId = 'BBOT', teamId = 'T1', users = {}, channels = {} }) {
  const fake = {
    url: '',
    apiUrl: '',
    botUserId,
    teamId,
    users,
    channels,
    /** Every call: {method, body, at (ms, the fake's clock), status}. */
    calls: [],
    /** channel → messages, oldest first. */
    messages: new Map(),
    stop: null,
  };
  const failures = [];
  let lastTs = 0;
  const nextTs = () => {
    // Microsecond-unique, increasing, in Slack's "seconds.micros" form.
    lastTs = Math.max(lastTs + 1, Date.now() * 1000);
    return `${Math.floor(lastTs / 1e6)}.${String(lastTs % 1e6).padStart(6, '0')}`;
  };
  const channelMessages = (channel) => {
    if (!fake.messages.has(channel)) fake.messages.set(channel, []);
    return fake.messages.get(channel);
  };

  /** A person writes in a channel (a thread reply with `thread_ts`) → the stored message. */
  fake.userMessage = (channel, { user, text, thread_ts }) => {
    const message = { type: 'message', user, text, ts: nextTs(), team: teamId };
    if (thread_ts) message.thread_ts = thread_ts;
    channelMessages(channel).push(message);
    return message;
  };
  /**
   * The next call of `method` for which `match(body)` holds answers `status` (429 with
   * `retryAfter`); with `lose`, the call is carried out and only its answer is lost (a 500).
   */
  fake.failNext = (method, { status = 429, retryAfter = 1, lose = false, match = () => true } = {}) => {
    failures.push({ method, status: lose ? 500 : status, retryAfter, lose, match });
  };
  /** The bot's messages in a thread, as they are now. */
  fake.botPosts = (channel, thread_ts) =>
    channelMessages(channel).filter((m) => m.bot_id && (m.thread_ts === thread_ts || m.ts === thread_ts));
  fake.callsOf = (method) => fake.calls.filter((c) => c.method === method);

  const thread = (channel, ts) => {
    const all = channelMessages(channel);
    return all.filter((m) => m.ts === ts || m.thread_ts === ts).sort((a, b) => (a.ts < b.ts ? -1 : 1));
  };
  const find = (channel, ts) => channelMessages(channel).find((m) => m.ts === ts);

  const methods = {
    'auth.test': () => ({ ok: true, url: 'https://fake.slack.example/', team: 'Fake', user: 'coordinator', team_id: teamId, user_id: botUserId, bot_id: botId }),
    'users.info': ({ user }) => {
      const u = users[user];
      if (!u) return { ok: false, error: 'user_not_found' };
      const profile = { real_name: u.real_name ?? u.name, display_name: u.name };
      if (u.email) profile.email = u.email;
      return { ok: true, user: { id: user, team_id: teamId, name: u.name, real_name: u.real_name ?? u.name, is_bot: !!u.is_bot, is_email_confirmed: u.email ? true : undefined, profile } };
    },
    'conversations.info': ({ channel }) => (channels[channel] ? { ok: true, channel: { id: channel, name: channels[channel] } } : { ok: false, error: 'channel_not_found' }),
    'conversations.replies': ({ channel, ts, include_all_metadata }) => {
      if (!find(channel, ts)) return { ok: false, error: 'thread_not_found' };
      const messages = thread(channel, ts).map((m) => {
        const { metadata, ...rest } = m;
        return include_all_metadata === 'true' || include_all_metadata === true ? { ...rest, metadata } : rest;
      });
      return { ok: true, messages, has_more: false };
    },
    'chat.postMessage': ({ channel, thread_ts, text, blocks, metadata }) => {
      if (!channel || (!text && !blocks)) return { ok: false, error: 'no_text' };
      const message = { type: 'message', user: botUserId, bot_id: botId, text, blocks, ts: nextTs(), team: teamId };
      if (thread_ts) message.thread_ts = thread_ts;
      if (metadata) message.metadata = metadata;
      message.updates = [];
      channelMessages(channel).push(message);
      return { ok: true, channel, ts: message.ts, message };
    },
    'chat.update': ({ channel, ts, text, blocks }) => {
      const message = find(channel, ts);
      if (!message) return { ok: false, error: 'message_not_found' };
      if (!message.bot_id) return { ok: false, error: 'cant_update_message' };
      message.updates = [...(message.updates ?? []), { text, at: Date.now() }];
      message.text = text;
      message.blocks = blocks;
      return { ok: true, channel, ts, text };
    },
    'chat.getPermalink': ({ channel, message_ts }) =>
      find(channel, message_ts)
        ? { ok: true, channel, permalink: `https://fake.slack.example/archives/${channel}/p${message_ts.replace('.', '')}` }
        : { ok: false, error: 'message_not_found' },
  };

  const server = http.createServer(async (req, res) => {
    const raw = await readBody(req);
    const method = decodeURIComponent(new URL(req.url, 'http://x').pathname.replace(/^\/api\//, ''));
    const type = req.headers['content-type'] ?? '';
    let body = {};
    try {
      body = type.startsWith('application/json') ? JSON.parse(raw || '{}') : Object.fromEntries(new URLSearchParams(raw));
    } catch {
      body = null;
    }
    const call = { method, body, at: Date.now(), status: 200, contentType: type };
    fake.calls.push(call);
    const send = (status, json, headers = {}) => {
      call.status = status;
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(json));
    };
    if (req.method !== 'POST') return send(405, { ok: false, error: 'method_not_allowed' });
    if (req.headers.authorization !== `Bearer ${botToken}`) return send(200, { ok: false, error: 'invalid_auth' });
    if (body === null) return send(200, { ok: false, error: 'invalid_json' });
    const failure = failures.findIndex((f) => f.method === method && f.match(body));
    const handler = methods[method];
    if (failure >= 0) {
      const [f] = failures.splice(failure, 1);
      if (f.lose) handler?.(body);
      return send(f.status, { ok: false, error: f.lose ? 'internal_error' : 'ratelimited' }, f.status === 429 ? { 'retry-after': String(f.retryAfter) } : {});
    }
    if (!handler) return send(200, { ok: false, error: 'unknown_method' });
    send(200, handler(body));
  });
  const port = await listen(server);
  fake.url = `http://127.0.0.1:${port}`;
  fake.apiUrl = `${fake.url}/api/`;
  fake.stop = () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(() => resolve()); });
  return fake;
}

/**
 * A fake OpenAI-compatible model for the classifier: `POST /v1/chat/completions` answers
 * `answer(body)` (an object, sent as the JSON content) after `delayMs`. Records the requests.
 */
export async function startFakeClassifier() {
  const fake = {
    url: '',
    requests: [],
    delayMs: 0,
    answer: () => ({ repo: null, confidence: 0, reason: 'not told' }),
    stop: null,
  };
  const server = http.createServer(async (req, res) => {
    const raw = await readBody(req);
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
      res.writeHead(404);
      return res.end();
    }
    const body = JSON.parse(raw);
    fake.requests.push({ body, authorization: req.headers.authorization, at: Date.now() });
    const delay = fake.delayMs;
    const content = JSON.stringify(fake.answer(body));
    setTimeout(() => {
      if (res.destroyed) return;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 'cmpl-1', object: 'chat.completion', model: body.model, choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content } }] }));
    }, delay);
  });
  const port = await listen(server);
  fake.url = `http://127.0.0.1:${port}`;
  fake.stop = () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(() => resolve()); });
  return fake;
}
