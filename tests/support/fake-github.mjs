// A fake GitHub at the network boundary: a Node HTTP server speaking the REST shapes the
// coordinator uses (under /api/v3, as GitHub Enterprise serves them) and the OAuth web flow
// (at the root). It verifies the App's JWT against the public half of the test key, honours
// `repositories` and `permissions` when it mints installation tokens, keeps refresh tokens
// single-use, refuses expired tokens with 401, and records every request so tests can check
// who asked for what with which token. It also serves the installed repositories over git
// smart HTTP at `/<owner>/<name>.git` (git http-backend, support/git-http.mjs), asking for
// Basic auth `x-access-token:<token>` as GitHub does and honouring the token's repositories
// and its `contents` permission.

import { createHash, createHmac, generateKeyPairSync, randomBytes, randomUUID, verify } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { basicAuth, gitIn, gitPath, makeBareRepo, serveGit } from './git-http.mjs';

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** A fresh RSA key pair for an App: the PEM forms GitHub hands out (PKCS#1) and PKCS#8. */
export function appKeyPair() {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    publicKey,
    pkcs1: privateKey.export({ type: 'pkcs1', format: 'pem' }),
    pkcs8: privateKey.export({ type: 'pkcs8', format: 'pem' }),
  };
}

/** `X-Hub-Signature-256` of a webhook body. */
export function webhookSignature(secret, body) {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/**
 * Starts the fake. `users` maps a login to {name?, emails?: [{email, primary, verified}],
 * orgs?: [org]}; `installations` is [{account, repos: ['owner/name']}].
 */
export async function startFakeGithub({ appId, publicKey, clientId, clientSecret, users = {}, installations = [] }) {
  const fake = {
    url: '',
    apiUrl: '',
    requests: [],
    /** access_tokens requests: {installation, body}. */
    tokenRequests: [],
    /** Refresh exchanges per login. */
    refreshes: {},
    /** Seconds a user access token lives (GitHub's default is 8 hours). */
    accessExpiresIn: 8 * 3600,
    /** The login signed in to the fake's web pages, who authorizes on the authorize page. */
    browserUser: Object.keys(users)[0] ?? null,
    /** Every token it handed out, so a test can search for them where they must not be. */
    issued: [],
    /** The access tokens handed out to each login. */
    tokensOf: {},
    pulls: new Map(),
    /** Where the bare repositories live: `<gitRoot>/<owner>/<name>.git`, one per installed repository. */
    gitRoot: mkdtempSync(path.join(os.tmpdir(), 'fake-github-git-')),
    /** git smart HTTP requests: {method, repo, service, status, who: null | {kind, login?, repositories?, permissions?}}. */
    gitRequests: [],
    stop: null,
  };
  const installs = installations.map((inst, i) => ({ id: 100 + i, ...inst }));
  for (const repo of new Set(installs.flatMap((i) => i.repos))) makeBareRepo(fake.gitRoot, repo);
  const installationTokens = new Map();
  const userTokens = new Map();
  const refreshTokens = new Map();
  const codes = new Map();
  let nextPull = 1;

  const issue = (prefix) => {
    const token = `${prefix}_${randomBytes(18).toString('base64url')}`;
    fake.issued.push(token);
    return token;
  };
  const userPair = (login) => {
    const access = issue('ghu');
    fake.tokensOf[login] = [...(fake.tokensOf[login] ?? []), access];
    const refresh = issue('ghr');
    userTokens.set(access, { login, expiresAt: Date.now() + fake.accessExpiresIn * 1000 });
    refreshTokens.set(refresh, { login, used: false });
    return {
      access_token: access,
      expires_in: fake.accessExpiresIn,
      refresh_token: refresh,
      refresh_token_expires_in: 15_897_600,
      token_type: 'bearer',
      scope: '',
    };
  };
  const userJson = (login) => ({ id: 1000 + Object.keys(users).indexOf(login), login, name: users[login].name ?? login, type: 'User' });

  function appJwt(req) {
    const match = /^Bearer ([\w-]+)\.([\w-]+)\.([\w-]+)$/.exec(req.headers.authorization ?? '');
    if (!match) return false;
    const ok = verify('sha256', Buffer.from(`${match[1]}.${match[2]}`), publicKey, Buffer.from(match[3], 'base64url'));
    if (!ok) return false;
    const header = JSON.parse(Buffer.from(match[1], 'base64url'));
    const claims = JSON.parse(Buffer.from(match[2], 'base64url'));
    const now = Date.now() / 1000;
    return header.alg === 'RS256' && claims.iss === String(appId) && claims.exp > now && claims.iat <= now + 60 && claims.exp - claims.iat <= 600;
  }

  /** Who a bearer token is: {kind: 'user', login} or {kind: 'installation', …}; null if unknown or expired. */
  function bearer(req) {
    const token = /^(?:Bearer|token) (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
    const user = userTokens.get(token);
    if (user) return user.expiresAt > Date.now() ? { kind: 'user', login: user.login, token } : null;
    const inst = installationTokens.get(token);
    if (inst) return inst.expiresAt > Date.now() ? { kind: 'installation', ...inst, token } : null;
    return null;
  }

  const canReach = (who, repo, permission) => {
    if (!who) return false;
    if (who.kind === 'user') return true;
    const installed = who.installation.repos.includes(repo);
    const named = !who.repositories || who.repositories.includes(repo.split('/')[1]);
    return installed && named && (!permission || who.permissions[permission] === 'write');
  };

  function prJson(repo, pr) {
    return {
      number: pr.number,
      html_url: `${fake.url}/${repo}/pull/${pr.number}`,
      state: pr.state,
      title: pr.title,
      body: pr.body,
      draft: pr.draft,
      user: { login: pr.login, type: pr.login.endsWith('[bot]') ? 'Bot' : 'User' },
      head: { ref: pr.head, sha: pr.sha, repo: { full_name: repo } },
      base: { ref: pr.base, repo: { full_name: repo } },
      merged_at: pr.merged_at ?? null,
      closed_at: pr.closed_at ?? null,
    };
  }

  function route(req, res, url, body, answer) {
    const path = url.pathname;
    const api = path.startsWith('/api/v3/') ? path.slice('/api/v3'.length) : null;
    const needJwt = () => (appJwt(req) ? null : answer(401, { message: 'A JSON web token could not be decoded' }));
    let m;
    if (api === '/app' && req.method === 'GET') return needJwt() ?? answer(200, { id: Number(appId), slug: 'fake-app', name: 'Fake App' });
    if (api === '/app/installations' && req.method === 'GET') {
      return needJwt() ?? answer(200, installs.map((i) => ({ id: i.id, account: { login: i.account } })));
    }
    if ((m = /^\/repos\/([^/]+\/[^/]+)\/installation$/.exec(api ?? '')) && req.method === 'GET') {
      if (needJwt()) return;
      const inst = installs.find((i) => i.repos.includes(m[1]));
      return inst ? answer(200, { id: inst.id, account: { login: inst.account } }) : answer(404, { message: 'Not Found' });
    }
    if ((m = /^\/app\/installations\/(\d+)\/access_tokens$/.exec(api ?? '')) && req.method === 'POST') {
      if (needJwt()) return;
      const installation = installs.find((i) => i.id === Number(m[1]));
      if (!installation) return answer(404, { message: 'Not Found' });
      const asked = body ? JSON.parse(body) : {};
      fake.tokenRequests.push({ installation: installation.id, body: asked });
      const names = installation.repos.map((r) => r.split('/')[1]);
      if (asked.repositories?.some((r) => !names.includes(r))) return answer(422, { message: 'There is at least one repository that does not exist or is not accessible' });
      const token = issue('ghs');
      const expiresAt = Date.now() + 3600_000;
      const permissions = asked.permissions ?? { contents: 'write', metadata: 'read', pull_requests: 'write' };
      installationTokens.set(token, { installation, repositories: asked.repositories ?? null, permissions, expiresAt });
      const expires_at = new Date(expiresAt).toISOString().replace(/\.\d{3}Z$/, 'Z');
      return answer(201, { token, expires_at, permissions, repository_selection: asked.repositories ? 'selected' : 'all' });
    }
    if (api === '/installation/repositories' && req.method === 'GET') {
      const who = bearer(req);
      if (who?.kind !== 'installation') return answer(401, { message: 'Bad credentials' });
      const repos = who.installation.repos.filter((r) => canReach(who, r));
      return answer(200, {
        total_count: repos.length,
        repositories: repos.map((full_name, i) => ({ id: i + 1, full_name, description: `${full_name} (installed)`, default_branch: 'main', private: true })),
      });
    }
    if (api === '/user' && req.method === 'GET') {
      const who = bearer(req);
      if (who?.kind !== 'user') return answer(401, { message: 'Bad credentials' });
      return answer(200, userJson(who.login));
    }
    if (api === '/user/emails' && req.method === 'GET') {
      const who = bearer(req);
      if (who?.kind !== 'user') return answer(401, { message: 'Bad credentials' });
      return answer(200, users[who.login].emails ?? []);
    }
    if ((m = /^\/orgs\/([^/]+)\/members\/([^/]+)$/.exec(api ?? '')) && req.method === 'GET') {
      const who = bearer(req);
      if (who?.kind !== 'user') return answer(401, { message: 'Bad credentials' });
      res.writeHead((users[m[2]]?.orgs ?? []).includes(m[1]) ? 204 : 404);
      res.end();
      return;
    }
    // A repository and a branch's head (the coordinator's cron reads them with a read-only token).
    if ((m = /^\/repos\/([^/]+\/[^/]+)$/.exec(api ?? '')) && req.method === 'GET') {
      if (!canReach(bearer(req), m[1])) return answer(404, { message: 'Not Found' });
      return answer(200, { full_name: m[1], default_branch: 'main', private: true });
    }
    if ((m = /^\/repos\/([^/]+\/[^/]+)\/branches\/([^/]+)$/.exec(api ?? '')) && req.method === 'GET') {
      if (!canReach(bearer(req), m[1])) return answer(404, { message: 'Not Found' });
      const sha = fake.git(m[1], 'rev-parse', '--verify', `refs/heads/${m[2]}`);
      return sha ? answer(200, { name: m[2], commit: { sha } }) : answer(404, { message: 'Branch not found' });
    }
    if ((m = /^\/repos\/([^/]+\/[^/]+)\/pulls(?:\/(\d+))?$/.exec(api ?? ''))) {
      const repo = m[1];
      const who = bearer(req);
      if (!who) return answer(401, { message: 'Bad credentials' });
      const list = fake.pulls.get(repo) ?? [];
      if (req.method === 'GET' && m[2]) {
        const pr = list.find((p) => p.number === Number(m[2]));
        return pr ? answer(200, prJson(repo, pr)) : answer(404, { message: 'Not Found' });
      }
      if (req.method === 'GET') {
        if (!canReach(who, repo)) return answer(404, { message: 'Not Found' });
        const head = url.searchParams.get('head');
        const state = url.searchParams.get('state') ?? 'open';
        const found = list.filter((p) => (state === 'all' || p.state === state) && (!head || `${repo.split('/')[0]}:${p.head}` === head));
        return answer(200, found.map((p) => prJson(repo, p)));
      }
      if (req.method === 'POST') {
        if (!canReach(who, repo, 'pull_requests')) return answer(403, { message: 'Resource not accessible by integration' });
        const asked = JSON.parse(body);
        if (list.some((p) => p.state === 'open' && p.head === asked.head)) {
          return answer(422, { message: 'Validation Failed', errors: [{ message: `A pull request already exists for ${repo.split('/')[0]}:${asked.head}.` }] });
        }
        const pr = {
          number: nextPull++,
          state: 'open',
          title: asked.title,
          body: asked.body,
          draft: Boolean(asked.draft),
          head: asked.head,
          base: asked.base,
          sha: createHash('sha1').update(`${repo}${asked.head}${Date.now()}`).digest('hex'),
          login: who.kind === 'user' ? who.login : 'fake-app[bot]',
          token: who.token,
        };
        fake.pulls.set(repo, [...list, pr]);
        return answer(201, prJson(repo, pr));
      }
    }
    // The web side: OAuth.
    if (path === '/login/oauth/authorize' && req.method === 'GET') {
      const p = url.searchParams;
      if (p.get('client_id') !== clientId) return answer(404, { message: 'unknown client' });
      const approve = new URL('/login/oauth/authorize/approve', fake.url);
      for (const name of ['redirect_uri', 'state', 'code_challenge', 'code_challenge_method']) approve.searchParams.set(name, p.get(name) ?? '');
      approve.searchParams.set('login', fake.browserUser ?? '');
      const page = `<!doctype html><html><head><meta charset="utf-8"><title>Authorize</title></head><body>
<h1>Authorize the session coordinator</h1><p>Signed in to GitHub as <b id="login">${fake.browserUser}</b>.</p>
<a id="authorize" role="button" href="${approve.pathname}${approve.search.replace(/&/g, '&amp;')}">Authorize</a>
</body></html>`;
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(page);
      return;
    }
    if (path === '/login/oauth/authorize/approve' && req.method === 'GET') {
      const p = url.searchParams;
      const code = randomBytes(10).toString('hex');
      codes.set(code, { login: p.get('login'), challenge: p.get('code_challenge'), method: p.get('code_challenge_method'), redirect: p.get('redirect_uri') });
      const back = new URL(p.get('redirect_uri'));
      back.searchParams.set('code', code);
      back.searchParams.set('state', p.get('state'));
      res.writeHead(302, { location: back.toString() });
      res.end();
      return;
    }
    if (path === '/login/oauth/access_token' && req.method === 'POST') {
      const asked = (req.headers['content-type'] ?? '').includes('json') ? JSON.parse(body) : Object.fromEntries(new URLSearchParams(body));
      if (asked.client_id !== clientId || asked.client_secret !== clientSecret) return answer(200, { error: 'incorrect_client_credentials' });
      if (asked.grant_type === 'refresh_token') {
        const known = refreshTokens.get(asked.refresh_token);
        if (!known || known.used) return answer(200, { error: 'bad_refresh_token' });
        known.used = true;
        fake.refreshes[known.login] = (fake.refreshes[known.login] ?? 0) + 1;
        return answer(200, userPair(known.login));
      }
      const grant = codes.get(asked.code);
      codes.delete(asked.code);
      const challenge = grant && b64url(createHash('sha256').update(asked.code_verifier ?? '').digest());
      if (!grant || grant.method !== 'S256' || challenge !== grant.challenge || asked.redirect_uri !== grant.redirect) {
        return answer(200, { error: 'bad_verification_code', error_description: 'The code passed is incorrect or expired.' });
      }
      return answer(200, userPair(grant.login));
    }
    return answer(404, { message: 'Not Found' });
  }

  /**
   * git smart HTTP: 401 with a Basic challenge until the request carries `x-access-token:` and
   * a live token that may read (fetch) or write `contents` (push) of that repository.
   */
  function git(req, res, url, target) {
    const record = { method: req.method, repo: target.repo, service: target.service, status: 0, who: null };
    fake.gitRequests.push(record);
    const refuse = (status, message, headers = {}) => {
      record.status = status;
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
      res.end(`${message}\n`);
      req.resume();
    };
    const basic = basicAuth(req.headers.authorization);
    const who = basic?.user === 'x-access-token' ? bearer({ headers: { authorization: `Bearer ${basic.password}` } }) : null;
    if (!who) return refuse(401, 'Invalid username or token.', { 'www-authenticate': 'Basic realm="GitHub"' });
    record.who = who.kind === 'user' ? { kind: 'user', login: who.login } : { kind: 'installation', installation: who.installation.id, repositories: who.repositories, permissions: who.permissions };
    const push = target.service === 'git-receive-pack';
    const allowed = who.kind === 'user' || (canReach(who, target.repo) && (!push || who.permissions.contents === 'write'));
    if (!allowed) return refuse(403, `Permission to ${target.repo}.git denied.`);
    if (gitIn(fake.gitRoot, target.repo, ['rev-parse', '--git-dir']) === null) return refuse(404, 'Repository not found.');
    record.status = 200;
    serveGit(req, res, { root: fake.gitRoot, target, query: url.search.slice(1), remoteUser: 'x-access-token' });
  }

  const server = http.createServer((req, response) => {
    const gitUrl = new URL(req.url, fake.url);
    const target = gitPath(gitUrl.pathname, gitUrl.search);
    if (target) {
      fake.requests.push({ method: req.method, path: gitUrl.pathname, search: gitUrl.search, authorization: req.headers.authorization ?? null, body: '' });
      return git(req, response, gitUrl, target);
    }
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const url = new URL(req.url, fake.url);
      fake.requests.push({ method: req.method, path: url.pathname, search: url.search, authorization: req.headers.authorization ?? null, body });
      const answer = (status, json) => {
        response.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
        response.end(JSON.stringify(json));
      };
      try {
        route(req, response, url, body, answer);
      } catch (err) {
        answer(500, { message: String(err?.message ?? err) });
      }
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.url = `http://127.0.0.1:${server.address().port}`;
  fake.apiUrl = `${fake.url}/api/v3`;

  /** Makes a user's current access tokens expired (the fake refuses them with 401). */
  fake.expireAccessTokens = (login) => {
    for (const entry of userTokens.values()) if (entry.login === login) entry.expiresAt = Date.now() - 1000;
  };
  /** Changes a pull request as if it happened on GitHub; returns its JSON. */
  fake.updatePull = (repo, number, change) => {
    const pr = (fake.pulls.get(repo) ?? []).find((p) => p.number === number);
    Object.assign(pr, change);
    return prJson(repo, pr);
  };
  /** Requests made with this Authorization header value. */
  fake.requestsWith = (token) => fake.requests.filter((r) => r.authorization === `Bearer ${token}` || r.authorization === `token ${token}`);
  fake.deliveryId = () => randomUUID();
  /** `git <args>` in the fake's bare repository `owner/name` → its output, or null. */
  fake.git = (repo, ...args) => gitIn(fake.gitRoot, repo, args);
  fake.stop = () =>
    new Promise((resolve) => {
      server.close(resolve);
      server.closeAllConnections();
    }).finally(() => rmSync(fake.gitRoot, { recursive: true, force: true }));
  return fake;
}
