// The sandbox side as an attacker sees it: the sandbox endpoint answers nobody without a sandbox
// token made for that session (and tells no made-up session from a real one), and the agent in
// a real sandbox (the local provider, a real `bridge run`, the `dev` agent's shell) cannot get
// the sandbox token into an event, wherever it looks for it.
//
// A small proxy between the Worker and the local provider records each create's body, so the
// test knows the token the bridge holds without the bridge ever showing it.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { existsSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { allEvents, createSession, createUser, freePort, rid, useServer } from './support/server.mjs';
import { dialBridge, startLocalProvider } from './support/sandbox.mjs';

const secret = randomBytes(24).toString('base64url');
// The system's Python: the bridge's commands get a plain PATH, where a version manager's shims may not work.
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
let providerPort;
let provider = null;
let proxy = null;
const creates = [];

/** Forwards every request to the local provider unchanged (so its signature holds), keeping the creates' bodies. */
async function startProxy(targetPort) {
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.method === 'POST' && req.url === '/sandboxes') {
        try {
          creates.push(JSON.parse(body.toString()));
        } catch {
          // the provider will say what is wrong with it
        }
      }
      const forwarded = http.request(
        { host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode, answer.headers);
          answer.pipe(res);
        },
      );
      forwarded.on('error', () => {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end('{"error":{"code":"unavailable","message":"the local provider is not running"}}');
      });
      forwarded.end(body);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

const ctx = useServer({
  vars: async () => {
    providerPort = await freePort();
    proxy = await startProxy(providerPort);
    return {
      PROVIDER: 'local',
      PROVIDER_URL: `http://127.0.0.1:${proxy.address().port}`,
      PROVIDER_SECRET: secret,
    };
  },
});

after(async () => {
  await provider?.stop();
  await new Promise((resolve) => (proxy ? proxy.close(resolve) : resolve()));
});

const refusal = async (sessionId, options) => {
  try {
    const socket = await dialBridge(ctx.server, sessionId, options);
    socket.close();
    return { status: 'opened' };
  } catch (err) {
    return { status: err.status };
  }
};

/** Prints every string shaped like a sandbox token in the writable memory of the process given as argv[1]. */
const MEMORY_SCAN = `
import re, sys
pid = sys.argv[1]
found = set()
try:
    mem = open("/proc/%s/mem" % pid, "rb", 0)
    for line in open("/proc/%s/maps" % pid):
        span, perms = line.split()[:2]
        if not perms.startswith("rw"):
            continue
        a, b = (int(x, 16) for x in span.split("-"))
        try:
            mem.seek(a)
            found.update(re.findall(rb"sbx1[.][A-Za-z0-9_.-]+", mem.read(b - a)))
        except (OSError, ValueError, OverflowError):
            pass
except OSError as e:
    print("memory: closed (%s)" % e.strerror)
    sys.exit(0)
print("memory:", b" ".join(sorted(found)).decode())
`;

/** Connects to the Unix socket given as argv[1], saying whether it could. */
const SOCKET_DIAL = `
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
    print("socket: connected")
except OSError as e:
    print("socket: refused (%s)" % e.strerror)
`;

describe('no anonymous work', () => {
  test('the sandbox endpoint answers 401 alike for made-up and real sessions without a valid token', async () => {
    const alice = await createUser(ctx.server, 'Alice', { repos: ['acme/*'] });
    const real = (await createSession(ctx.server, alice, { title: 'real' })).session.id;
    const madeUp = `ses_${randomBytes(16).toString('hex')}`;
    const garbage = 'sbx1.' + randomBytes(40).toString('base64url');
    const forgedForReal = `sbx1.${real}.sbx_${randomBytes(16).toString('hex')}.${randomBytes(32).toString('base64url')}.${'0'.repeat(64)}`;
    for (const options of [{}, { token: 'not-a-sandbox-token' }, { token: garbage }, { token: forgedForReal, sandboxId: 'sbx_x' }]) {
      const [a, b] = [await refusal(real, options), await refusal(madeUp, options)];
      assert.deepEqual([a.status, b.status], [401, 401], JSON.stringify(options));
    }
    // The same over plain HTTP: one answer, the same body, whatever the session.
    const bodies = [];
    for (const sid of [real, madeUp]) {
      const res = await ctx.http.get(`/v1/sessions/${sid}/sandbox`);
      assert.equal(res.status, 401);
      bodies.push(res.text);
      const credentials = await ctx.http.post(`/v1/sessions/${sid}/sandbox/git-credentials`, {
        headers: { authorization: 'Bearer not-a-sandbox-token' },
        body: { protocol: 'https', host: 'github.com', path: 'acme/demo.git' },
      });
      assert.equal(credentials.status, 401);
      bodies.push(credentials.text);
    }
    assert.equal(new Set(bodies).size, 1, bodies.join('\n'));
    assert.ok(!bodies[0].includes('not found'), bodies[0]);
  });
});

describe('the agent cannot read the sandbox token', () => {
  test("the agent's shell finds it neither in the bridge's environment, nor in its file, nor in its memory", async () => {
    // As root (as here), the provider runs each agent as an unprivileged user (nobody) while
    // the bridge stays root, as a deployment would; the bridge is not dumpable either way, so
    // the agent cannot read its memory.
    provider ??= await startLocalProvider({ port: providerPort, secret, env: { HEARTBEAT_SECS: '1' } });
    const alice = await createUser(ctx.server, 'Alice', { repos: ['acme/*'] });
    const created = await createSession(ctx.server, alice, { title: 'secrets' });
    const sid = created.session.id;
    const { client } = await ctx.connect(sid, created.token, 0);
    // Every place a process of the sandbox might find it: the parent's (the bridge's)
    // environment, the token file it names and that file's folder, the bridge's memory (its
    // writable mappings, searched for the token's shape), and a plain copy printed by a tool.
    const prompt = [
      'Look for the token',
      "$ tr '\\0' '\\n' < /proc/$PPID/environ",
      `$ f=$(tr '\\0' '\\n' 2>/dev/null < /proc/$PPID/environ | sed -n 's/^SANDBOX_TOKEN_FILE=//p'); echo "file: $f"; cat "$f" 2>&1; ls -la ../.tokens ../.tokens/* 2>&1; cat ../.tokens/*/* 2>&1`,
      `$ ${PYTHON} -c "exec(bytes.fromhex('${Buffer.from(MEMORY_SCAN).toString('hex')}'))" $PPID 2>&1`,
      // Whom the agent runs as, and the bridge's credential socket (its path is in the
      // workspace's git config), dialled directly.
      `$ echo "agent=$(id -u) bridge=$(stat -c %u /proc/$PPID)"; sock=$(git config --get-all credential.helper | sed -n "s/.*--socket '\\(.*\\)'$/\\1/p"); echo "socket: $sock"; ${PYTHON} -c "exec(bytes.fromhex('${Buffer.from(SOCKET_DIAL).toString('hex')}'))" "$sock" 2>&1`,
    ].join('\n');
    client.send({ type: 'prompt', content: prompt, client_request_id: rid() });
    const ack = await client.waitFor((f) => f.type === 'prompt_ack');
    const finished = await client.waitFor((f) => f.type === 'prompt_finished' && f.message_id === ack.message_id, 90_000);
    assert.equal(finished.status, 'completed', JSON.stringify(finished));
    const create = creates.find((c) => c.session_id === sid);
    assert.ok(create, 'the provider was asked for a sandbox');
    const token = create.sandbox_token;

    const events = await allEvents(ctx.server, alice, sid);
    const tools = events.filter((e) => e.type === 'tool_call' && e.message_id === ack.message_id && e.status !== 'running');
    assert.equal(tools.length, 4, JSON.stringify(tools));
    // The commands did run and saw what there was to see: the bridge's environment is closed
    // to them (it is not dumpable), or, were it open, holds no token.
    assert.match(tools[0].output, new RegExp(`environ: Permission denied|SESSION_ID=${sid}`), tools[0].output);
    assert.match(tools[1].output, /file: /, tools[1].output);
    assert.match(tools[2].output, /^memory:/);
    // Nowhere, in no stored event (which is what a replay sends), is the token.
    const log = JSON.stringify(events);
    assert.ok(!log.includes(token), `the sandbox token reached an event:\n${tools.map((t) => t.output).join('\n---\n')}`);
    assert.doesNotMatch(log, /SANDBOX_TOKEN=(?!\*\*\*)/);
    // Not even the shape of a token: the bridge's memory is closed to the agent.
    assert.match(tools[2].output, /^memory: closed/, tools[2].output);
    // As root the agent is another user than the bridge, and the bridge's credential socket is
    // closed to it (where both are one user, the socket's folder is that user's).
    const [, agentUid, bridgeUid] = tools[3].output.match(/agent=(\d+) bridge=(\d+)/) ?? [];
    assert.ok(agentUid && bridgeUid, tools[3].output);
    assert.match(tools[3].output, /socket: \S+credentials\.sock/, tools[3].output);
    if (process.getuid?.() === 0) {
      assert.notEqual(agentUid, bridgeUid, tools[3].output);
      assert.equal(bridgeUid, '0', tools[3].output);
      assert.match(tools[3].output, /socket: refused \(Permission denied\)/, tools[3].output);
      // The token file (named in the bridge's environment, unreadable anyway) and /proc environ.
      assert.match(tools[0].output, /environ: Permission denied/, tools[0].output);
    }
    // Nor anything that opens the bridge's socket: the bridge itself holds it and works on.
    assert.equal((await refusal(sid, { token: 'sbx1.' + 'x'.repeat(40) })).status, 401);
  });
});
