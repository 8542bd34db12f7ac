// The shared engines of the cluster bench, each a private instance on free loopback
// ports in the bench's work dir, started in its own process group through
// bench/common/server-process.ts (so that killAll() on exit, error or Ctrl-C leaves
// none behind): Debian's redis-server (nothing saved), PostgreSQL (initdb, run as
// the `postgres` user when the bench runs as root, which initdb requires), and
// InfluxDB (bench/common/influxd.ts). Plus what the bench reads of Redis: INFO
// (commands by name, network bytes, CPU, memory) before and after each phase.
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { freePort, isAlive, spawnServer, stopSpawned, type Server } from '../common/server-process.js';
import { sleep } from '../common/timing.js';

export const REDIS_SERVER = '/usr/bin/redis-server';

export interface RedisServer extends Server {
  readonly url: string;
  /** A connection of the bench's own, for INFO and FLUSHALL. */
  readonly admin: Redis;
  info(): Promise<RedisInfo>;
}

/** What a phase's Redis figures are computed from: counters, read before and after. */
export interface RedisInfo {
  /** Calls of every command but INFO (the bench's own readings). */
  calls: number;
  /** Calls by command name (publish, hset, …). */
  byCommand: Record<string, number>;
  netIn: number;
  netOut: number;
  /** used_cpu_sys + used_cpu_user, s: the server's own (main and I/O threads). */
  cpu: number;
  usedMemory: number;
  at: number;
}

export function redisVersion(): string {
  try {
    return /v=(\S+)/.exec(execFileSync(REDIS_SERVER, ['--version']).toString())?.[1] ?? '?';
  } catch {
    return '?';
  }
}

/** redis-server on a free port: nothing saved to disk, no persistence. */
export async function startRedis(dir: string): Promise<RedisServer> {
  if (!existsSync(REDIS_SERVER)) throw new Error('redis-server not found: install Debian\'s redis-server package');
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const logFile = join(dir, 'redis.log');
  const p = spawnServer(`${REDIS_SERVER} --port ${port} --bind 127.0.0.1 --dir ${dir} --save '' --appendonly no`, { cwd: dir, logFile });
  const url = `redis://127.0.0.1:${port}`;
  const admin = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 200 });
  admin.on('error', () => {});
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      await admin.connect();
      if ((await admin.ping()) === 'PONG') break;
    } catch { /* not yet */ }
    if (!isAlive(p) || Date.now() > deadline) {
      admin.disconnect();
      await stopSpawned(p);
      throw new Error(`redis-server did not start (log: ${logFile})`);
    }
    await sleep(100);
  }
  return {
    name: 'redis', pid: p.pid, ports: {}, logFile, url, admin, alive: () => isAlive(p),
    info: () => readInfo(admin),
    async stop() {
      admin.disconnect();
      await stopSpawned(p);
    },
  };
}

async function readInfo(admin: Redis): Promise<RedisInfo> {
  const text = await admin.info('stats', 'cpu', 'memory', 'commandstats');
  const field = (name: string) => Number(new RegExp(`^${name}:(\\S+)`, 'm').exec(text)?.[1] ?? NaN);
  const byCommand: Record<string, number> = {};
  let calls = 0;
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (m[1] === 'info') continue;
    byCommand[m[1]!] = Number(m[2]);
    calls += Number(m[2]);
  }
  return {
    calls, byCommand, netIn: field('total_net_input_bytes'), netOut: field('total_net_output_bytes'),
    cpu: field('used_cpu_sys') + field('used_cpu_user'), usedMemory: field('used_memory'), at: Date.now(),
  };
}

/** after − before, per command, only those called. */
export function commandDelta(a: RedisInfo, b: RedisInfo): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(b.byCommand)) {
    const d = v - (a.byCommand[k] ?? 0);
    if (d > 0) out[k] = d;
  }
  return out;
}

export interface PostgresServer extends Server {
  readonly port: number;
  readonly admin: string;
  version: string;
  /** A new empty database; its URL. */
  database(name: string): Promise<string>;
  query<T = any>(url: string, sql: string): Promise<T[]>;
}

/** The newest installed server's bin directory. */
function pgBin(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'postgres'))) : [];
  if (versions.length === 0) throw new Error('PostgreSQL server not found: install Debian\'s postgresql package');
  return join(root, versions.sort((a, b) => Number(b) - Number(a))[0]!, 'bin');
}

/**
 * initdb into dir/data and postgres on a free port, run as `postgres` when we are
 * root. Default durability settings (fsync on), unlike the tests' PostgreSQL.
 */
export async function startPostgres(dir: string): Promise<PostgresServer> {
  const bin = pgBin();
  mkdirSync(dir, { recursive: true });
  const root = process.getuid?.() === 0;
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  const user = root ? { uid: id('-u'), gid: id('-g') } : undefined;
  if (user) chownSync(dir, user.uid, user.gid);
  const data = join(dir, 'data');
  try {
    execFileSync(join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8'], { stdio: 'pipe', cwd: dir, ...user });
  } catch (e) {
    throw new Error(`initdb failed (the work dir must be reachable by the postgres user): ${String((e as { stderr?: Buffer }).stderr ?? e).trim().slice(0, 400)}`);
  }
  const port = await freePort();
  const logFile = join(dir, 'postgres.log');
  const as = user ? `setpriv --reuid=${user.uid} --regid=${user.gid} --clear-groups -- ` : '';
  const p = spawnServer(`${as}${join(bin, 'postgres')} -D ${data} -p ${port} -k ${dir} -c listen_addresses=127.0.0.1`, { cwd: dir, logFile });
  const admin = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const query = async <T>(url: string, sql: string): Promise<T[]> => {
    const c = new pg.Client({ connectionString: url });
    c.on('error', () => {});
    await c.connect();
    try {
      return (await c.query(sql)).rows as T[];
    } finally {
      await c.end();
    }
  };
  const deadline = Date.now() + 30_000;
  let version = '?';
  for (;;) {
    try {
      version = (await query<{ server_version: string }>(admin, 'SHOW server_version'))[0]!.server_version;
      break;
    } catch { /* not yet */ }
    if (!isAlive(p) || Date.now() > deadline) {
      await stopSpawned(p);
      throw new Error(`postgres did not start (log: ${logFile})`);
    }
    await sleep(200);
  }
  return {
    name: 'postgres', pid: p.pid, ports: {}, logFile, port, admin, version, alive: () => isAlive(p), query,
    async database(name) {
      await query(admin, `CREATE DATABASE ${pg.escapeIdentifier(name)}`);
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    stop: () => stopSpawned(p, 10_000),
  };
}
