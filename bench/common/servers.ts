// The servers the MQTT, telemetry and commands benches start: Debian's
// Mosquitto, a bare aedes, Switchboard and Debian's InfluxDB, each a private
// instance on free loopback ports with config, data and log in a directory of
// the bench's work dir. Packaged system services are never used or touched.
//
// Every server runs in its own process group under `bash -c 'ulimit -n …;
// exec …'` (10,000 connections need more than 1,024 descriptors), and is
// remembered until it exits, so that killAll() (called on exit, on signals
// and on errors) leaves nothing behind.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, createWriteStream, existsSync, mkdirSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { freePort, RAISE_NOFILE } from '../xmpp/peers.js';
import { sleep } from '../xmpp/proc.js';
import { brokerNodeFlags } from './broker-flags.js';

export { freePort, RAISE_NOFILE };

export const REPO = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
export const SWITCHBOARD_BIN = join(REPO, 'bin', 'switchboard.js');

export interface Server {
  readonly name: string;
  /** Root of the process tree to measure (bench/xmpp/proc.ts). */
  readonly pid: number;
  readonly ports: { mqtt?: number; xmpp?: number; http?: number; influx?: number };
  readonly logFile: string;
  /** False once the process has exited (crashed, or stopped). */
  alive?(): boolean;
  stop(): Promise<void>;
}

const live = new Set<number>();

/** SIGKILLs every server still running (their whole process groups). */
export function killAll(): void {
  for (const pgid of live) {
    try { process.kill(-pgid, 'SIGKILL'); } catch { /* gone */ }
  }
  live.clear();
}

/** Whatever happens to the bench, no server outlives it. */
export function installCleanup(extra: () => void = () => {}): void {
  process.on('exit', () => { extra(); killAll(); });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => { extra(); killAll(); process.exit(130); });
  }
}

interface Spawned { child: ChildProcess; pid: number; exited: Promise<void> }

function spawnServer(command: string, opts: { cwd: string; logFile: string; onLine?: (l: string) => void; env?: NodeJS.ProcessEnv }): Spawned {
  const child = spawn('bash', ['-c', `${RAISE_NOFILE}; exec ${command}`], {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid!;
  live.add(pid);
  const log = createWriteStream(opts.logFile, { flags: 'a' });
  if (opts.onLine) {
    const onLine = opts.onLine;
    createInterface({ input: child.stdout! }).on('line', (l) => { log.write(l + '\n'); onLine(l); });
  } else {
    child.stdout!.pipe(log);
  }
  child.stderr!.pipe(log);
  const exited = new Promise<void>((resolve) => child.once('exit', () => { live.delete(pid); resolve(); }));
  return { child, pid, exited };
}

const isAlive = (p: Spawned) => p.child.exitCode === null && p.child.signalCode === null;

async function stopSpawned(p: Spawned, graceMs = 5_000): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  try { process.kill(-p.pid, 'SIGTERM'); } catch { /* gone */ }
  const timedOut = await Promise.race([p.exited.then(() => false), sleep(graceMs).then(() => true)]);
  if (timedOut) {
    try { process.kill(-p.pid, 'SIGKILL'); } catch { /* gone */ }
    await p.exited;
  }
  // Process-group members that outlived the leader.
  try { process.kill(-p.pid, 'SIGKILL'); } catch { /* gone */ }
}

async function waitForPort(port: number, p: Spawned, what: string, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (p.child.exitCode !== null || p.child.signalCode !== null) throw new Error(`${what} exited during startup`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`${what} did not open port ${port} within ${timeoutMs / 1000}s`);
    await sleep(100);
  }
}

/** Waits for a JSON line with msg "listening" on stdout; returns it. */
async function listeningLine(p: Spawned, waiter: Promise<Record<string, unknown>>, what: string, timeoutMs = 60_000): Promise<Record<string, unknown>> {
  try {
    return await Promise.race([
      waiter,
      p.exited.then((): never => { throw new Error(`${what} exited during startup`); }),
      sleep(timeoutMs).then((): never => { throw new Error(`${what} logged no "listening" line within ${timeoutMs / 1000}s`); }),
    ]);
  } catch (e) {
    await stopSpawned(p);
    throw e;
  }
}

function onListening(): { onLine: (l: string) => void; line: Promise<Record<string, unknown>> } {
  let announce: (r: Record<string, unknown>) => void = () => {};
  const line = new Promise<Record<string, unknown>>((r) => { announce = r; });
  return {
    line,
    onLine: (l) => {
      if (!l.includes('"listening"')) return;
      try {
        const rec = JSON.parse(l) as Record<string, unknown>;
        if (rec.msg === 'listening') announce(rec);
      } catch { /* not JSON */ }
    },
  };
}

// ------------------------------------------------------------- Mosquitto

export const MOSQUITTO = '/usr/sbin/mosquitto';

export function mosquittoVersion(): string {
  try {
    return /version (\S+)/.exec(execFileSync(MOSQUITTO, ['-h'], { stdio: ['ignore', 'pipe', 'pipe'] }).toString())?.[1] ?? '?';
  } catch (e) {
    const out = String((e as { stdout?: Buffer }).stdout ?? '');
    return /version (\S+)/.exec(out)?.[1] ?? '?';
  }
}

/**
 * Debian's Mosquitto 2.0 with its defaults (max_inflight_messages 20,
 * max_queued_messages 1000, no persistence), anonymous, one plain listener.
 * `extra` lines are appended to the config.
 */
export async function startMosquitto(dir: string, extra: string[] = []): Promise<Server> {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  const logFile = join(dir, 'mosquitto.log');
  writeFileSync(conf, [
    '# Written by the Switchboard bench for one run.',
    'per_listener_settings false',
    'user root', // no privilege drop: everything lives in the bench's temp dir
    'persistence false',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    ...extra,
    '',
  ].join('\n'));
  const p = spawnServer(`${MOSQUITTO} -c ${conf}`, { cwd: dir, logFile });
  try {
    await waitForPort(port, p, 'mosquitto');
  } catch (e) {
    await stopSpawned(p);
    throw e;
  }
  return { name: 'mosquitto', pid: p.pid, ports: { mqtt: port }, logFile, alive: () => isAlive(p), stop: () => stopSpawned(p) };
}

// ------------------------------------------------------------- bare aedes

/** aedes as in its README: createBroker() with defaults, net.createServer(handle). */
export async function startAedes(dir: string, opts: { noDelay?: boolean } = {}): Promise<Server> {
  mkdirSync(dir, { recursive: true });
  const logFile = join(dir, 'aedes.log');
  const l = onListening();
  const script = join(REPO, 'bench', 'common', 'aedes-server.mjs');
  const p = spawnServer(`${process.execPath} ${script}`, { cwd: REPO, logFile, onLine: l.onLine, env: { NODELAY: opts.noDelay ? '1' : '0' } });
  const rec = await listeningLine(p, l.line, 'aedes');
  return { name: 'aedes', pid: p.pid, ports: { mqtt: rec.mqtt as number }, logFile, alive: () => isAlive(p), stop: () => stopSpawned(p) };
}

// ------------------------------------------------------------ Switchboard

export interface SwitchboardAccounts {
  devices: Array<{ id: string; password: string }>;
  accounts: Array<{ name: string; role: 'service' | 'operator'; password: string }>;
}

/** Newest modification time of the TypeScript sources that dist/ is built from. */
function newestSource(): number {
  let newest = 0;
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(ts|mts|json)$/.test(e.name)) newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  for (const d of ['src', 'bridges', 'devices', 'schemas', 'types']) if (existsSync(join(REPO, d))) walk(join(REPO, d));
  return newest;
}

/**
 * Builds dist/ (npm run build) when a source is newer than it, unless told
 * not to; fails if nothing could be emitted.
 */
export function buildSwitchboard(skip: boolean): string {
  const index = join(REPO, 'dist', 'src', 'index.js');
  if (skip) {
    if (!existsSync(index)) throw new Error('dist/ is missing: run npm run build');
    return 'not rebuilt (--no-build)';
  }
  if (existsSync(index) && statSync(index).mtimeMs > newestSource()) return 'dist/ is up to date';
  const t = Date.now();
  try {
    execFileSync('npm', ['run', '--silent', 'build'], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000 });
  } catch (e) {
    const out = String((e as { stdout?: Buffer }).stdout ?? '') + String((e as { stderr?: Buffer }).stderr ?? '');
    // tsc emits in spite of type errors (no noEmitOnError): other developers'
    // work in progress elsewhere in src/ need not stop the bench. It goes on
    // with what was emitted, and says so.
    const emitted = existsSync(index) && statSync(index).mtimeMs >= t - 1_000;
    if (!emitted) throw new Error(`npm run build failed:\n${out.slice(0, 2000)}`);
    const first = out.split('\n').filter((l) => /error TS/.test(l));
    return `built in ${((Date.now() - t) / 1000).toFixed(1)} s WITH ${first.length} TYPE ERROR(S) (emitted anyway), first: ${first[0] ?? '?'}`;
  }
  return `built in ${((Date.now() - t) / 1000).toFixed(1)} s`;
}

/** The commit and whether the worktree has changes, for the report. */
export function gitDescribe(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO }).toString().trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'bridges', 'devices', 'schemas'], { cwd: REPO }).toString().trim();
    return dirty ? `${head} + uncommitted changes in src/bridges` : head;
  } catch {
    return '?';
  }
}

/**
 * Provisions accounts once, through the documented CLI (`device import`,
 * `device import --accounts`), into a template data dir; every start copies
 * its registry into a fresh data dir, so runs do not inherit each other's
 * spool or embedded store.
 */
export function provisionSwitchboard(templateDir: string, a: SwitchboardAccounts): number {
  const t = Date.now();
  mkdirSync(join(templateDir, 'data'), { recursive: true });
  const config = join(templateDir, 'switchboard.yaml');
  writeFileSync(config, switchboardYaml(join(templateDir, 'data'), {}));
  const run = (file: string, rows: string[], accounts: boolean) => {
    writeFileSync(file, rows.join('\n') + '\n');
    try {
      execFileSync(process.execPath, [SWITCHBOARD_BIN, 'device', 'import', file, ...(accounts ? ['--accounts'] : []), '--config', config],
        { stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 });
    } catch (e) {
      const err = e as { stderr?: Buffer; stdout?: Buffer; message: string };
      throw new Error(`device import failed: ${(err.stderr?.toString() || err.stdout?.toString() || err.message).trim().slice(0, 500)}`);
    }
  };
  if (a.devices.length) run(join(templateDir, 'devices.csv'), a.devices.map((d) => `${d.id},thermostat,${d.password}`), false);
  if (a.accounts.length) run(join(templateDir, 'accounts.csv'), a.accounts.map((x) => `${x.name},${x.role},${x.password}`), true);
  return Date.now() - t;
}

export interface TsdbOptions { kind: 'embedded' | 'influx'; url?: string; database?: string; batchSize?: number; flushMs?: number }

function switchboardYaml(dataDir: string, tsdb: Partial<TsdbOptions>): string {
  const t: string[] = [`kind: ${tsdb.kind ?? 'embedded'}`];
  if (tsdb.url) t.push(`influx: { url: "${tsdb.url}", database: ${tsdb.database ?? 'switchboard'} }`);
  if (tsdb.batchSize) t.push(`batchSize: ${tsdb.batchSize}`);
  if (tsdb.flushMs) t.push(`flushMs: ${tsdb.flushMs}`);
  return [
    'domain: localhost',
    `dataDir: ${dataDir}`,
    'xmpp: { host: 127.0.0.1, port: 0, requireTls: false }',
    'mqtt: { host: 127.0.0.1, port: 0, tlsPort: null }',
    'http: { host: 127.0.0.1, port: 0 }',
    `tsdb: { ${t.join(', ')} }`,
    '',
  ].join('\n');
}

/** Extra node flags for the broker, e.g. ['--cpu-prof', '--cpu-prof-dir=…'] (SB_BENCH_NODE_FLAGS). */
function nodeFlags(): string {
  return process.env.SB_BENCH_NODE_FLAGS ?? '';
}

/** `switchboard@DIR` as a broker or pipeline name: DIR, another built checkout to run (an A/B in one interleaved run). */
export function otherCheckout(name: string): string | undefined {
  const at = name.indexOf('@');
  return name.startsWith('switchboard') && at > 0 ? name.slice(at + 1) : undefined;
}

/** A fresh data dir with a copy of the template's registry, and its config file. */
function switchboardDir(dir: string, templateDir: string, tsdb: TsdbOptions): string {
  const data = join(dir, 'data');
  mkdirSync(data, { recursive: true });
  for (const f of readdirSync(join(templateDir, 'data'))) {
    if (f.startsWith('registry.sqlite')) copyFileSync(join(templateDir, 'data', f), join(data, f));
  }
  const config = join(dir, 'switchboard.yaml');
  writeFileSync(config, switchboardYaml(data, tsdb));
  return config;
}

/** Starts Switchboard on a fresh copy of the template's registry; `checkout`: another built checkout to run instead of this one. */
export async function startSwitchboard(dir: string, templateDir: string, tsdb: TsdbOptions, checkout?: string): Promise<Server> {
  const config = switchboardDir(dir, templateDir, tsdb);
  const bin = checkout ? join(checkout, 'bin', 'switchboard.js') : SWITCHBOARD_BIN;
  return spawnSwitchboard('switchboard', dir, `${brokerNodeFlags(bin).join(' ')} ${bin} start --config ${config}`, true);
}

/**
 * Switchboard's MQTT layer alone (bench/common/switchboard-mqtt-layer.mjs: auth, ACL,
 * presence, limits; every sample accepted at once instead of the telemetry pipeline),
 * on a fresh copy of the template's registry.
 */
export async function startSwitchboardMqttLayer(dir: string, templateDir: string, checkout?: string): Promise<Server> {
  const config = switchboardDir(dir, templateDir, { kind: 'embedded' });
  const script = join(REPO, 'bench', 'common', 'switchboard-mqtt-layer.mjs');
  // With the node flags of the checkout's broker, as it would run.
  const flags = brokerNodeFlags(join(checkout ?? REPO, 'bin', 'switchboard.js')).join(' ');
  return spawnSwitchboard('switchboard-mqtt', dir, `${flags} ${script} ${config}${checkout ? ` ${checkout}` : ''}`, false);
}

async function spawnSwitchboard(name: string, dir: string, args: string, full: boolean): Promise<Server> {
  const logFile = join(dir, 'switchboard.log');
  const l = onListening();
  const p = spawnServer(`${process.execPath} ${nodeFlags()} ${args}`, { cwd: dir, logFile, onLine: l.onLine });
  const rec = await listeningLine(p, l.line, name);
  const ports = full ? { mqtt: rec.mqtt as number, xmpp: rec.xmpp as number, http: rec.http as number } : { mqtt: rec.mqtt as number };
  try {
    await waitForPort(ports.mqtt, p, name);
  } catch (e) {
    await stopSpawned(p);
    throw e;
  }
  // SIGTERM flushes the spool (tsdb.shutdownFlushMs, 5 s by default) before exiting.
  return { name, pid: p.pid, ports, logFile, alive: () => isAlive(p), stop: () => stopSpawned(p, 10_000) };
}

/** Reads a counter or gauge (summed over labels) from Switchboard's /metrics. */
export async function metric(httpPort: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

// --------------------------------------------------------------- InfluxDB

export const INFLUXD = '/usr/bin/influxd';

export interface Influx extends Server {
  readonly url: string;
  query(q: string, db?: string): Promise<any>;
  /** Points the shards of `db` have accepted so far (SHOW STATS, cheap enough to poll). */
  pointsWritten(db: string): Promise<number>;
  /** SELECT count(*): distinct points stored (a point written twice counts once). */
  count(db: string, measurement: string): Promise<number>;
}

export function influxVersion(): string {
  try {
    return /InfluxDB (\S+)/.exec(execFileSync(INFLUXD, ['version']).toString())?.[1] ?? '?';
  } catch {
    return '?';
  }
}

/** Debian's influxd with the config of test/helpers/influx.ts (no reporting, no _internal store, no query log). */
export async function startInflux(dir: string): Promise<Influx> {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const rpc = await freePort();
  const conf = join(dir, 'influxdb.conf');
  writeFileSync(conf, `reporting-disabled = true
bind-address = "127.0.0.1:${rpc}"
[meta]
  dir = "${dir}/meta"
[data]
  dir = "${dir}/data"
  wal-dir = "${dir}/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:${port}"
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
`);
  const logFile = join(dir, 'influxd.log');
  const p = spawnServer(`${INFLUXD} -config ${conf}`, { cwd: dir, logFile });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      if ((await fetch(`${url}/ping`)).status === 204) break;
    } catch { /* not yet */ }
    if (p.child.exitCode !== null || Date.now() > deadline) {
      await stopSpawned(p);
      throw new Error(`influxd did not start (log: ${logFile})`);
    }
    await sleep(100);
  }
  const query = async (q: string, db?: string): Promise<any> => {
    const params = new URLSearchParams({ q, epoch: 'ms' });
    if (db) params.set('db', db);
    const res = await fetch(`${url}/query`, { method: 'POST', body: params });
    return res.json();
  };
  return {
    name: 'influxd', pid: p.pid, ports: { influx: port }, logFile, url, query, alive: () => isAlive(p),
    async pointsWritten(db) {
      const r = await query('SHOW STATS FOR \'shard\'');
      let n = 0;
      for (const s of r.results?.[0]?.series ?? []) {
        if (s.tags?.database !== db) continue;
        const i = (s.columns as string[]).indexOf('writePointsOk');
        n += Number(s.values?.[0]?.[i] ?? 0);
      }
      return n;
    },
    async count(db, measurement) {
      const r = await query(`SELECT count(*) FROM "${measurement}"`, db);
      const values = r.results?.[0]?.series?.[0]?.values?.[0] as number[] | undefined;
      return values ? Math.max(...values.slice(1)) : 0;
    },
    stop: () => stopSpawned(p),
  };
}

/** Bytes of a file, 0 when absent. */
export function fileSize(path: string): number {
  try { return statSync(path).size; } catch { return 0; }
}
