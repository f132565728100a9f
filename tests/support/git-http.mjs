// Git smart HTTP for the fake GitHub: git's own `git http-backend` run as a CGI program from a
// Node HTTP handler (the request body streams into it, its headers and body stream back), and
// bare repositories made with plumbing commands, so neither a work tree nor anyone's git
// identity, config or hooks are involved.

import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';

/** `/<owner>/<name>.git/<rest>` → {repo: 'owner/name', pathInfo, service} or null. */
export function gitPath(pathname, query) {
  const match = /^\/([\w.-]+)\/([\w.-]+)\.git(\/(?:info\/refs|git-upload-pack|git-receive-pack))$/.exec(pathname);
  if (!match || [match[1], match[2]].some((p) => p === '.' || p === '..')) return null;
  const tail = match[3];
  const service = tail === '/info/refs' ? new URLSearchParams(query).get('service') : tail.slice(1);
  if (service !== 'git-upload-pack' && service !== 'git-receive-pack') return null;
  return { repo: `${match[1]}/${match[2]}`, pathInfo: `/${match[1]}/${match[2]}.git${tail}`, service };
}

/** The `user:password` of a Basic `Authorization` header, or null. */
export function basicAuth(header) {
  const match = /^Basic ([A-Za-z0-9+/=]+)$/.exec(header ?? '');
  if (!match) return null;
  const text = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = text.indexOf(':');
  return colon < 0 ? null : { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

const plumbing = (dir, args, input, env = {}) =>
  execFileSync('git', ['-C', dir, ...args], {
    input,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: dir, GIT_CONFIG_NOSYSTEM: '1', ...env },
  }).trim();

/** A bare repository `<root>/<owner>/<name>.git` with one commit (a README) on `branch`. */
export function makeBareRepo(root, repo, branch = 'main') {
  const dir = path.join(root, `${repo}.git`);
  mkdirSync(path.dirname(dir), { recursive: true });
  execFileSync('git', ['init', '--quiet', '--bare', `--initial-branch=${branch}`, dir], { env: { PATH: process.env.PATH, HOME: root } });
  const readme = plumbing(dir, ['hash-object', '-w', '--stdin'], `# ${repo}\n`);
  const tree = plumbing(dir, ['mktree'], `100644 blob ${readme}\tREADME.md\n`);
  const who = { GIT_AUTHOR_NAME: 'Fake GitHub', GIT_AUTHOR_EMAIL: 'fake@github.invalid', GIT_COMMITTER_NAME: 'Fake GitHub', GIT_COMMITTER_EMAIL: 'fake@github.invalid' };
  const commit = plumbing(dir, ['commit-tree', '--no-gpg-sign', '-m', 'Initial commit', tree], undefined, who);
  plumbing(dir, ['update-ref', `refs/heads/${branch}`, commit]);
  return dir;
}

/**
 * Moves `branch` of the bare repository `<root>/<repo>.git` on by one commit that adds `file`
 * holding `text` (as a push would) → the new commit's id.
 */
export function addCommit(root, repo, file, text, branch = 'main') {
  const dir = path.join(root, `${repo}.git`);
  const parent = plumbing(dir, ['rev-parse', `refs/heads/${branch}`]);
  const blob = plumbing(dir, ['hash-object', '-w', '--stdin'], text);
  const entries = plumbing(dir, ['ls-tree', parent]).split('\n').filter((line) => line && !line.endsWith(`\t${file}`));
  const tree = plumbing(dir, ['mktree'], [...entries, `100644 blob ${blob}\t${file}`].join('\n') + '\n');
  const who = { GIT_AUTHOR_NAME: 'Someone', GIT_AUTHOR_EMAIL: 'someone@example.com', GIT_COMMITTER_NAME: 'Someone', GIT_COMMITTER_EMAIL: 'someone@example.com' };
  const commit = plumbing(dir, ['commit-tree', '--no-gpg-sign', '-p', parent, '-m', `Add ${file}`, tree], undefined, who);
  plumbing(dir, ['update-ref', `refs/heads/${branch}`, commit, parent]);
  return commit;
}

/** `git <args>` in a bare repository of `root` → its output, or null when it fails. */
export function gitIn(root, repo, args) {
  try {
    return plumbing(path.join(root, `${repo}.git`), args);
  } catch {
    return null;
  }
}

/**
 * Hands the request to `git http-backend` for `target` (from `gitPath`) under `root`; pushes
 * are allowed (REMOTE_USER is set: the caller checked who it is).
 */
export function serveGit(req, res, { root, target, query, remoteUser }) {
  const env = {
    PATH: process.env.PATH,
    GIT_PROJECT_ROOT: root,
    GIT_HTTP_EXPORT_ALL: '1',
    REMOTE_USER: remoteUser,
    GATEWAY_INTERFACE: 'CGI/1.1',
    REQUEST_METHOD: req.method,
    PATH_INFO: target.pathInfo,
    QUERY_STRING: query,
    CONTENT_TYPE: req.headers['content-type'] ?? '',
  };
  // Without a length (a chunked push), http-backend reads its input to the end.
  if (req.headers['content-length']) env.CONTENT_LENGTH = req.headers['content-length'];
  if (req.headers['content-encoding']) env.HTTP_CONTENT_ENCODING = req.headers['content-encoding'];
  if (req.headers['git-protocol']) env.HTTP_GIT_PROTOCOL = req.headers['git-protocol'];
  const child = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  child.on('error', (err) => {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(`cannot run git http-backend: ${err.message}`);
  });
  req.pipe(child.stdin);
  child.stdin.on('error', () => {}); // http-backend may stop reading early
  let head = Buffer.alloc(0);
  let headerDone = false;
  child.stdout.on('data', (chunk) => {
    if (headerDone) return res.write(chunk);
    head = Buffer.concat([head, chunk]);
    const crlf = head.indexOf('\r\n\r\n');
    const lf = head.indexOf('\n\n');
    const [end, sep] = crlf >= 0 && (lf < 0 || crlf < lf) ? [crlf, 4] : [lf, 2];
    if (end < 0) return;
    headerDone = true;
    let status = 200;
    const headers = {};
    for (const line of head.subarray(0, end).toString('latin1').split(/\r?\n/)) {
      const colon = line.indexOf(':');
      if (colon < 0) continue;
      const name = line.slice(0, colon).trim();
      const value = line.slice(colon + 1).trim();
      if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10) || 502;
      else headers[name] = value;
    }
    res.writeHead(status, headers);
    res.write(head.subarray(end + sep));
  });
  child.stdout.on('end', () => {
    if (!headerDone) {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`git http-backend sent no headers: ${stderr.slice(0, 500)}`);
    } else {
      res.end();
    }
  });
}
