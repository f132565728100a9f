// Starting the Worker under test in local workerd through Miniflare's API (no wrangler dev
// proxy in front), with its own persisted state, and finding its workerd process.

import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

const require = createRequire(import.meta.url);
const wrangler = require('wrangler');
// Miniflare is wrangler's dependency (the version it pins), not the project's.
const { Miniflare, convertV4MiniflareOptions, Log, LogLevel } = createRequire(require.resolve('wrangler/package.json'))('miniflare');

/** Pids of this process's workerd children. */
function workerdChildren() {
  const out = execFileSync('ps', ['-o', 'pid=,comm=', '--ppid', String(process.pid)]).toString();
  return out
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter(([pid, comm]) => pid && comm === 'workerd')
    .map(([pid]) => Number(pid));
}

/**
 * A Worker from a wrangler.toml, run by Miniflare from already-built modules.
 * `modules`: [{type: 'ESModule' | 'CompiledWasm', path}], the entry first.
 * `bindings`: extra vars and secrets. `persistDir`: where D1 and DO SQLite files live.
 * `port`: where it listens (any free port when 0); a fixed one survives restarts, so sandboxes
 * that dial back to it find it again.
 */
export class Runtime {
  constructor({ name, configPath, modules, bindings = {}, persistDir, inspectorPort, port = 0 }) {
    Object.assign(this, { name, configPath, modules, bindings, persistDir, inspectorPort, port });
    this.mf = null;
    this.pid = 0;
    this.url = null;
  }

  options() {
    const { workerOptions } = wrangler.unstable_getMiniflareWorkerOptions(this.configPath);
    // Modules are listed explicitly: Miniflare 5 cannot take modulesRules from v4 options.
    const { modulesRules: _rules, rootPath: _root, ...worker } = workerOptions;
    const v4 = {
      host: '127.0.0.1',
      port: this.port,
      log: new Log(LogLevel.WARN),
      cf: false,
      workers: [
        {
          ...worker,
          name: this.name,
          modules: this.modules,
          modulesRoot: path.dirname(this.modules[0].path),
          bindings: { ...worker.bindings, ...this.bindings },
        },
      ],
    };
    if (this.inspectorPort) v4.inspectorPort = this.inspectorPort;
    return {
      ...convertV4MiniflareOptions(v4),
      resourcePersistencePath: this.persistDir,
      // The Workers' console output (one line per created user, …) is not the benchmark's.
      handleStructuredLogs: () => {},
    };
  }

  async start() {
    const before = new Set(workerdChildren());
    const started = performance.now();
    this.mf = new Miniflare(this.options());
    this.url = await this.mf.ready;
    this.startMs = performance.now() - started;
    const fresh = workerdChildren().filter((pid) => !before.has(pid));
    if (fresh.length !== 1) throw new Error(`${this.name}: expected one new workerd process, found ${fresh.length}`);
    this.pid = fresh[0];
    return this;
  }

  async stop() {
    if (!this.mf) return;
    await this.mf.dispose();
    this.mf = null;
    this.pid = 0;
  }

  async restart() {
    await this.stop();
    return this.start();
  }

  get base() {
    return this.url.href.replace(/\/$/, '');
  }

  get wsBase() {
    return this.base.replace(/^http/, 'ws');
  }

  /** Applies the D1 migrations of `dir` to the binding `name`. */
  async migrateD1(name, dir) {
    const db = await this.mf.getD1Database(name);
    for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.sql')).sort()) {
      const statements = wrangler.unstable_splitSqlQuery(fs.readFileSync(path.join(dir, file), 'utf8'));
      await db.batch(statements.map((statement) => db.prepare(statement)));
    }
  }

  /** The Durable Object SQLite databases of this runtime, most recently written first. */
  doDatabases() {
    const root = path.join(this.persistDir, 'do');
    const files = [];
    for (const dir of fs.existsSync(root) ? fs.readdirSync(root) : []) {
      for (const file of fs.readdirSync(path.join(root, dir))) {
        if (!file.endsWith('.sqlite') || file === 'metadata.sqlite') continue;
        const full = path.join(root, dir, file);
        const mtimes = [full, `${full}-wal`].filter((f) => fs.existsSync(f)).map((f) => fs.statSync(f).mtimeMs);
        files.push({ path: full, mtime: Math.max(...mtimes) });
      }
    }
    return files.sort((a, b) => b.mtime - a.mtime).map((f) => f.path);
  }
}

/** CPU seconds (utime + stime) of a process, from /proc. */
export function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Resident memory of a process in bytes. */
export function rssBytes(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(status.match(/^VmRSS:\s+(\d+)/m)[1]) * 1024;
}

/** Busy and total CPU ticks of the whole machine (every process, ours and others'). */
export function machineTicks() {
  const fields = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = fields[3] + (fields[4] ?? 0);
  const total = fields.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** A loopback port nobody listens on right now (for an inspector, or a runtime that must keep its port). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}
