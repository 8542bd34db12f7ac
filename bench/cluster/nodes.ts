// Switchboard nodes as the cluster bench runs them: each its own process, started as
// a user starts it from the checkout, `node FLAGS --import tsx src/cli.ts start
// --config FILE` (FLAGS: those of bin/switchboard.js' shebang; no build needed, and
// standalone and cluster run the same code), in its own process group
// (bench/common/server-process.ts), stopped by its pid. A standalone node runs on a
// copy of a template's SQLite registry; a cluster node on the shared PostgreSQL and
// Redis. Both store telemetry in the one InfluxDB, each run in a database of its own.
// Accounts are provisioned through the CLI (`migrate`, `device import`).
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import WebSocket from 'ws';
import { join } from 'node:path';
import { brokerNodeFlags } from '../common/broker-flags.js';
import { isAlive, listeningLine, onListening, spawnServer, stopSpawned } from '../common/server-process.js';
import { REPO, SWITCHBOARD_BIN } from '../common/switchboard.js';

const CLI = join(REPO, 'src', 'cli.ts');

export interface Shared {
  influxUrl: string;
  redisUrl: string;
  postgresUrl: string;
  /** The standalone nodes' template data dir (its registry.sqlite*). */
  template: string;
}

export interface NodeProc {
  readonly name: string;
  readonly pid: number;
  /** Started with `inspect`: the V8 heap in use plus external memory (Buffers) after two full collections, bytes (inspector protocol). */
  heapAfterGc(): Promise<number>;
  readonly ports: { xmpp: number; mqtt: number; http: number };
  readonly logFile: string;
  alive(): boolean;
  stop(): Promise<void>;
}

/** A node's config; `nodeId` null: standalone (SQLite registry in its dataDir). */
function config(dataDir: string, s: Shared, database: string, nodeId: string | null): Record<string, unknown> {
  return {
    domain: 'localhost',
    dataDir,
    xmpp: { host: '127.0.0.1', port: 0, requireTls: false },
    mqtt: { host: '127.0.0.1', port: 0, tlsPort: null },
    http: { host: '127.0.0.1', port: 0 },
    tsdb: { kind: 'influx', influx: { url: s.influxUrl, database }, batchSize: 5_000, flushMs: 1_000 },
    ...(nodeId === null ? {} : {
      cluster: { nodeId, redis: { url: s.redisUrl }, postgres: { url: s.postgresUrl }, heartbeatMs: 1_000, nodeTimeoutMs: 5_000 },
    }),
  };
}

/** The CLI on a config file; its stdout. */
function cli(args: string[]): string {
  try {
    return execFileSync(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000 }).toString();
  } catch (e) {
    const err = e as { stderr?: Buffer; stdout?: Buffer; message: string };
    throw new Error(`switchboard ${args.slice(0, 2).join(' ')} failed: ${(err.stderr?.toString() || err.stdout?.toString() || err.message).trim().slice(0, 600)}`);
  }
}

export interface Accounts {
  devices: Array<{ id: string; password: string }>;
  accounts: Array<{ name: string; role: 'service' | 'operator'; password: string }>;
}

/** `device import` (and `--accounts`) into the registry `configFile` names. */
function importAll(dir: string, configFile: string, a: Accounts): void {
  const devices = join(dir, 'devices.csv');
  const accounts = join(dir, 'accounts.csv');
  writeFileSync(devices, a.devices.map((d) => `${d.id},thermostat,${d.password}`).join('\n') + '\n');
  writeFileSync(accounts, a.accounts.map((x) => `${x.name},${x.role},${x.password}`).join('\n') + '\n');
  if (a.devices.length) cli(['device', 'import', devices, '--config', configFile]);
  if (a.accounts.length) cli(['device', 'import', accounts, '--accounts', '--config', configFile]);
}

/** The standalone template (SQLite) and the cluster's PostgreSQL (migrate first), with the same accounts. */
export function provision(work: string, s: Shared, standalone: Accounts, cluster: Accounts): void {
  mkdirSync(join(s.template, 'data'), { recursive: true });
  const sFile = join(s.template, 'switchboard.json');
  writeFileSync(sFile, JSON.stringify(config(join(s.template, 'data'), s, 'unused', null), null, 2));
  importAll(s.template, sFile, standalone);
  const cdir = join(work, 'cluster-provision');
  mkdirSync(join(cdir, 'data'), { recursive: true });
  const cFile = join(cdir, 'switchboard.json');
  writeFileSync(cFile, JSON.stringify(config(join(cdir, 'data'), s, 'unused', 'provision'), null, 2));
  cli(['migrate', '--config', cFile]);
  importAll(cdir, cFile, cluster);
}

/**
 * Starts a node in `dir` (its config, dataDir and log): standalone on a copy of the
 * template's registry, or a cluster node `nodeId`. Telemetry into `database`.
 */
export async function startNode(dir: string, s: Shared, database: string, nodeId: string | null, nodeFlags: string[] = [], inspect = false): Promise<NodeProc> {
  const name = nodeId === null ? 'standalone' : `node ${nodeId}`;
  const data = join(dir, 'data');
  mkdirSync(data, { recursive: true });
  if (nodeId === null) {
    for (const f of readdirSync(join(s.template, 'data'))) {
      if (f.startsWith('registry.sqlite')) copyFileSync(join(s.template, 'data', f), join(data, f));
    }
  }
  const file = join(dir, 'switchboard.json');
  writeFileSync(file, JSON.stringify(config(data, s, database, nodeId), null, 2));
  const flags = [process.env.SB_BENCH_NODE_FLAGS ?? '', ...brokerNodeFlags(SWITCHBOARD_BIN), ...nodeFlags, ...(inspect ? ['--inspect=127.0.0.1:0'] : []), '--import', 'tsx'].filter(Boolean);
  const logFile = join(dir, 'switchboard.log');
  const l = onListening();
  const p = spawnServer(`${process.execPath} ${flags.join(' ')} ${CLI} start --config ${file}`, { cwd: REPO, logFile, onLine: l.onLine });
  const rec = await listeningLine(p, l.line, name);
  return {
    name, pid: p.pid, logFile,
    async heapAfterGc() {
      // The inspector's address, as node wrote it on stderr (into the log).
      const url = /Debugger listening on (ws:\/\/\S+)/.exec(readFileSync(logFile, 'utf8'))?.[1];
      if (!url) throw new Error(`${name}: not started with the inspector`);
      return heapAfterGc(url);
    },
    ports: { xmpp: rec.xmpp as number, mqtt: rec.mqtt as number, http: rec.http as number },
    alive: () => isAlive(p),
    // SIGTERM flushes the spool to InfluxDB first (tsdb.shutdownFlushMs).
    stop: () => stopSpawned(p, 10_000),
  };
}

/**
 * Through the inspector protocol: two full garbage collections
 * (HeapProfiler.collectGarbage), then process.memoryUsage() heapUsed + external: the
 * live JS objects and Buffers, which RSS (garbage not yet collected, memory not yet
 * returned) shows only within a few MiB.
 */
function heapAfterGc(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    let id = 0;
    const waiting = new Map<number, (r: any) => void>();
    const call = (method: string, params: Record<string, unknown> = {}) => new Promise<any>((done) => {
      waiting.set(++id, done);
      ws.send(JSON.stringify({ id, method, params }));
    });
    const timer = setTimeout(() => (ws.terminate(), reject(new Error('inspector: no answer in 30 s'))), 30_000);
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString()) as { id?: number; result?: unknown };
      if (m.id !== undefined) waiting.get(m.id)?.(m.result);
    });
    ws.on('error', (err) => (clearTimeout(timer), reject(err)));
    ws.on('open', async () => {
      try {
        await call('HeapProfiler.collectGarbage');
        await call('HeapProfiler.collectGarbage');
        const r = await call('Runtime.evaluate', { expression: '(({ heapUsed, external }) => heapUsed + external)(process.memoryUsage())', returnByValue: true });
        clearTimeout(timer);
        ws.close();
        resolve(Number(r.result.value));
      } catch (err) {
        clearTimeout(timer);
        ws.terminate();
        reject(err as Error);
      }
    });
  });
}
