// The agent keeps its context across sandboxes: the Worker in workerd, the real local
// provider and `bridge run`. A sandbox that stops idle is replaced by a new one restored from
// the snapshot, and the new agent's first prompt carries the session's transcript (the `dev`
// agent says `Context: <n> earlier prompts` and `recall` names the earlier prompts); a bridge
// that is killed and started again in the same sandbox is not sent it again. With OpenCode
// (opencode-ai 1.18.33 against a stub model) the transcript reaches the model.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { allEvents, api, createSession, createUser, addMember, freePort, rid, sleep, useServer } from './support/server.mjs';
import { startLocalProvider } from './support/sandbox.mjs';
import { openCodeBin, startStubModel, toolNames } from './support/stub-model.mjs';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

const secret = randomBytes(24).toString('base64url');
let providerPort;
let provider = null;

const ctx = useServer({
  vars: async () => {
    providerPort = await freePort();
    return {
      PROVIDER: 'local',
      PROVIDER_URL: `http://127.0.0.1:${providerPort}`,
      PROVIDER_SECRET: secret,
      SANDBOX_HEARTBEAT_TIMEOUT_SECONDS: '30',
      // A sandbox with nothing to do stops after 2 s; the next prompt gets a new one.
      SANDBOX_IDLE_SECONDS: '2',
    };
  },
});

after(async () => {
  await provider?.stop();
});

async function prompt(user, sid, content) {
  const res = await api(ctx.server).post(`/v1/sessions/${sid}/prompts`, { key: user.key, body: { content, client_request_id: rid() } });
  assert.equal(res.status, 202, JSON.stringify(res.json));
  return res.json.message_id;
}

/** Waits for the prompt's end; returns its status, answer text and every event so far. */
async function finished(user, sid, messageId, ms = 90_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const events = await allEvents(ctx.server, user, sid);
    const end = events.find((e) => e.type === 'prompt_finished' && e.message_id === messageId);
    if (end) {
      const text = events.filter((e) => e.type === 'token' && e.message_id === messageId).map((e) => e.delta).join('');
      return { status: end.status, error: end.error, text, events };
    }
    assert.ok(Date.now() < deadline, `prompt ${messageId} did not finish`);
    await sleep(300);
  }
}

async function sandboxOf(user, sid) {
  return (await api(ctx.server).get(`/v1/sessions/${sid}`, { key: user.key })).json.sandbox;
}

/** Waits until the session's sandbox has stopped (idle shutdown). */
async function stopped(user, sid, id, ms = 30_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const sandbox = await sandboxOf(user, sid);
    if (sandbox?.id === id && sandbox.status === 'stopped') return sandbox;
    assert.ok(Date.now() < deadline, `sandbox ${id} did not stop: ${JSON.stringify(sandbox)}`);
    await sleep(300);
  }
}

describe('with the dev agent', () => {
  test('a replaced sandbox starts with the transcript; a reconnect of the same sandbox is not sent it again', async () => {
    provider ??= await startLocalProvider({ port: providerPort, secret, env: { HEARTBEAT_SECS: '1' } });
    const alice = await createUser(ctx.server, 'Alice', { repos: ['acme/*'] });
    const bob = await createUser(ctx.server, 'Bob', { repos: ['acme/*'] });
    const created = await createSession(ctx.server, alice, { title: 'context' });
    const sid = created.session.id;
    await addMember(ctx.server, alice, sid, bob);

    const first = await prompt(alice, sid, 'Paint the front door blue\n$ echo painted\nwrite door.txt: blue');
    const one = await finished(alice, sid, first);
    assert.equal(one.status, 'completed', one.error);
    assert.ok(one.text.startsWith('Working on: Paint the front door blue\n'), one.text);
    const sandbox1 = (await sandboxOf(alice, sid)).id;
    await stopped(alice, sid, sandbox1);

    // A new sandbox (restored from the snapshot): its agent knows the first prompt.
    const second = await prompt(bob, sid, 'What did we do before?\nrecall');
    const two = await finished(alice, sid, second);
    assert.equal(two.status, 'completed', two.error);
    const sandbox2 = await sandboxOf(alice, sid);
    assert.notEqual(sandbox2.id, sandbox1, 'the second prompt ran in a new sandbox');
    assert.ok(sandbox2.restored_from, `restored from the snapshot: ${JSON.stringify(sandbox2)}`);
    assert.equal(
      two.text,
      'Context: 1 earlier prompts\nWorking on: What did we do before?\nEarlier prompt by Alice: Paint the front door blue\n',
    );

    // The next prompt of that sandbox carries no transcript; its agent still knows both.
    const third = await prompt(alice, sid, 'And now?\nrecall');
    const three = await finished(alice, sid, third);
    assert.equal(three.status, 'completed', three.error);
    assert.equal((await sandboxOf(alice, sid)).id, sandbox2.id);
    assert.equal(
      three.text,
      'Working on: And now?\nEarlier prompt by Alice: Paint the front door blue\nEarlier prompt by Bob: What did we do before?\n',
    );

    // A third sandbox after another idle stop: two earlier prompts, the newest named last.
    await stopped(alice, sid, sandbox2.id);
    const fourth = await prompt(alice, sid, 'recall');
    const four = await finished(alice, sid, fourth);
    assert.equal(four.status, 'completed', four.error);
    assert.ok(four.text.startsWith('Context: 3 earlier prompts\nWorking on: recall\n'), four.text);
    assert.ok(four.text.endsWith('Earlier prompt by Alice: Paint the front door blue\nEarlier prompt by Bob: What did we do before?\nEarlier prompt by Alice: And now?\n'), four.text);

    // The bridge of the same sandbox killed and started again by the provider: it reconnects
    // as the same sandbox, and its next prompt has no transcript.
    const sandbox4 = await sandboxOf(alice, sid);
    const pid = Number(/^local-(\d+)$/.exec(sandbox4.provider_id)?.[1]);
    assert.ok(pid > 0, JSON.stringify(sandbox4));
    process.kill(pid, 'SIGKILL');
    await sleep(1_500);
    const fifth = await prompt(alice, sid, 'after the restart\nrecall');
    const five = await finished(alice, sid, fifth);
    assert.equal(five.status, 'completed', five.error);
    assert.equal((await sandboxOf(alice, sid)).id, sandbox4.id, 'the same sandbox');
    assert.equal(five.text, 'Working on: after the restart\nNo earlier prompts.\n');
  });
});

describe('with OpenCode', () => {
  test('the transcript is the context of the new OpenCode session and reaches the model', async (t) => {
    const bin = openCodeBin();
    if (!bin) {
      t.skip('opencode-ai 1.18.33 is not installed (npm install --no-save opencode-ai@1.18.33); the OpenCode case did not run');
      return;
    }
    // The first prompt makes the model call the memory server (when the configuration has it).
    const remember = (request) => {
      const tool = toolNames(request).find((name) => /^memory_create_entities$/.test(name));
      const messages = request.messages ?? [];
      const asked = JSON.stringify(messages.filter((m) => m.role === 'user')).includes('Remember the word periwinkle-42');
      if (!tool || !asked || messages.some((m) => m.role === 'tool')) return null;
      return { tool, args: { entities: [{ name: 'periwinkle-42', entityType: 'word', observations: ['the word to remember'] }] } };
    };
    const model = await startStubModel({ script: remember });
    // The MCP servers of the agent's configuration, where `npm run dev` and `npm test` install them.
    const bin_dir = path.dirname(bin);
    const mcpInstalled = ['mcp-server-memory', 'mcp-server-filesystem', 'playwright-mcp'].every((p) => existsSync(path.join(bin_dir, p)));
    const port = await freePort();
    // Its own Worker and provider, with OpenCode as the agent and the stub model as its model.
    const { startServer } = await import('./support/server.mjs');
    const server = await startServer({
      vars: {
        PROVIDER: 'local',
        PROVIDER_URL: `http://127.0.0.1:${port}`,
        PROVIDER_SECRET: secret,
        SANDBOX_HEARTBEAT_TIMEOUT_SECONDS: '30',
        SANDBOX_IDLE_SECONDS: '2',
      },
    });
    const ocProvider = await startLocalProvider({
      port,
      secret,
      env: {
        HEARTBEAT_SECS: '1',
        PATH: `${bin_dir}:${process.env.PATH}`,
        AGENT: 'opencode',
        OPENCODE_BIN: bin,
        OPENCODE_MODEL: 'stub/stub-model',
        // The stub model reaches OpenCode as inline config, passed through to the agent.
        SANDBOX_ENV_PASSTHROUGH: 'OPENCODE_CONFIG_CONTENT',
        OPENCODE_CONFIG_CONTENT: JSON.stringify(model.providerConfig),
      },
    });
    try {
      const alice = await createUser(server, 'Alice', { repos: ['acme/*'] });
      const created = await createSession(server, alice, { title: 'opencode context' });
      const sid = created.session.id;
      const post = async (content) => {
        const res = await api(server).post(`/v1/sessions/${sid}/prompts`, { key: alice.key, body: { content, client_request_id: rid() } });
        assert.equal(res.status, 202, JSON.stringify(res.json));
        return res.json.message_id;
      };
      const wait = async (messageId) => {
        const deadline = Date.now() + 120_000;
        for (;;) {
          const events = await allEvents(server, alice, sid);
          const end = events.find((e) => e.type === 'prompt_finished' && e.message_id === messageId);
          if (end) return end;
          assert.ok(Date.now() < deadline, `prompt ${messageId} did not finish\n${ocProvider.log().slice(-4000)}`);
          await sleep(500);
        }
      };
      const state = async () => (await api(server).get(`/v1/sessions/${sid}`, { key: alice.key })).json.sandbox;

      const first = await post('Remember the word periwinkle-42');
      const end1 = await wait(first);
      assert.equal(end1.status, 'completed', `${end1.error}\n${ocProvider.log().slice(-4000)}`);
      if (mcpInstalled) {
        // OpenCode runs with the bridge's configuration: the MCP servers' tools are offered
        // to the model, and the memory server wrote to the session owner's memory folder.
        const offered = new Set(model.requests.flatMap(toolNames));
        for (const prefix of ['memory_', 'filesystem_', 'playwright_']) {
          assert.ok([...offered].some((name) => name.startsWith(prefix)), `${prefix}* offered: ${[...offered].join(', ')}`);
        }
        const calls = (await allEvents(server, alice, sid)).filter((e) => e.type === 'tool_call' && e.message_id === first);
        assert.ok(calls.some((c) => c.tool === 'memory_create_entities' && c.status === 'completed'), JSON.stringify(calls));
        const memoryFile = path.join(ocProvider.workspaces, '.memory', 'acme__demo', alice.id, 'memory.jsonl');
        assert.match(readFileSync(memoryFile, 'utf8'), /periwinkle-42/);
      } else {
        t.diagnostic('the MCP servers are not installed (scripts/setup.sh --opencode installs them); their part was not checked');
      }
      const sandbox1 = (await state()).id;
      const deadline = Date.now() + 30_000;
      while ((await state()).status !== 'stopped') {
        assert.ok(Date.now() < deadline, 'the first sandbox did not stop');
        await sleep(300);
      }
      const before = model.requests.length;
      const second = await post('Which word did I ask you to remember?');
      const end2 = await wait(second);
      assert.equal(end2.status, 'completed', `${end2.error}\n${ocProvider.log().slice(-4000)}`);
      assert.notEqual((await state()).id, sandbox1, 'a new sandbox');
      // The model's request for the second prompt holds the transcript (the first prompt and
      // its answer) before the question, in one conversation.
      const asked = model.requests.slice(before).map((r) => JSON.stringify(r.messages ?? []));
      const withQuestion = asked.filter((m) => m.includes('Which word did I ask you to remember?'));
      assert.ok(withQuestion.length > 0, `the model was asked the question: ${asked.join('\n').slice(0, 2000)}`);
      assert.ok(
        withQuestion.some((m) => m.includes('periwinkle-42') && m.includes(model.answer)),
        `the transcript reached the model with the question: ${withQuestion[0].slice(0, 3000)}`,
      );
    } finally {
      await ocProvider.stop();
      await server.stop();
      await model.stop();
    }
  });
});
