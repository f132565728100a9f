// Safe defaults: production unless told otherwise, secrets shorter than 32 bytes refused when
// the Worker starts, and the page's security headers on every file it is served with.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { api, eventually, startServer, useServer } from './support/server.mjs';

const ctx = useServer();

test('the page and its files go out with the CSP, frame-ancestors \u2019none\u2019 and nosniff', { timeout: 30_000 }, async () => {
  for (const path of ['/', '/app.css', '/js/main.js']) {
    const res = await fetch(ctx.server.url + path);
    assert.equal(res.status, 200, path);
    await res.arrayBuffer();
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /frame-ancestors 'none'/, `${path}: ${csp}`);
    assert.match(csp, /default-src 'self'/, path);
    assert.match(csp, /script-src 'self'(;|$)/, `${path}: no inline or foreign scripts`);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff', path);
    assert.equal(res.headers.get('x-frame-options'), 'DENY', path);
  }
  // The rules file itself is not served.
  const rules = await fetch(`${ctx.server.url}/_headers`);
  await rules.arrayBuffer();
  assert.notEqual(rules.status, 200);
  // The API's answers are not sniffed either.
  const health = await fetch(`${ctx.server.url}/health`);
  await health.arrayBuffer();
  assert.equal(health.headers.get('x-content-type-options'), 'nosniff');
});

test('a deploy is production unless told otherwise', { timeout: 90_000 }, async () => {
  // wrangler.toml's own ENV, without the development the tests (like npm run dev) pass.
  const server = await startServer({ vars: { ENV: null, PROVIDER: 'local', PROVIDER_URL: 'http://127.0.0.1:9', PROVIDER_SECRET: 'p'.repeat(40) } });
  try {
    const health = await api(server).get('/health');
    assert.equal(health.status, 200, health.text);
    assert.equal(health.json.env, 'production');
    assert.match(health.json.provider_detail, /refused unless ENV=development/);
  } finally {
    await server.stop();
  }
  assert.equal((await ctx.http.get('/health')).json.env, 'development', 'the tests run as npm run dev does');
});

test('secrets shorter than 32 bytes are refused at startup with a clear error', { timeout: 90_000 }, async () => {
  const short = 'only-17-bytes-abc';
  const server = await startServer({ vars: { PROVIDER_SECRET: short }, healthy: false });
  try {
    for (const path of ['/health', '/v1/me', '/v1/users']) {
      const res = await api(server).get(path, { key: server.adminKey });
      assert.equal(res.status, 503, `${path}: ${res.text}`);
      assert.equal(res.json.error.code, 'unavailable');
      assert.ok(!res.text.includes(short), 'the value is never shown');
    }
    // The log says which secret and how long it is (wrangler prints it a moment later).
    await eventually(() => /PROVIDER_SECRET is 17 bytes long; secrets must be at least 32 bytes/.test(server.log()), { what: 'the refusal in the log' });
    assert.ok(!server.log().includes(short), 'nor logged');
  } finally {
    await server.stop();
  }
});
