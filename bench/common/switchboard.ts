// Switchboard as a server under test: accounts provisioned once through its CLI into
// a template, then each start on a fresh copy of the template's registry, with
// `bin/switchboard.js start` (its composition root) in its own process group.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brokerNodeFlags } from './broker-flags.js';
import { isAlive, listeningLine, onListening, portOrStop, spawnServer, stopSpawned, type Server } from './server-process.js';

export const REPO = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
export const SWITCHBOARD_BIN = join(REPO, 'bin', 'switchboard.js');

export interface SwitchboardAccounts {
  devices: Array<{ id: string; password: string }>;
  accounts: Array<{ name: string; role: 'service' | 'operator'; password: string }>;
}

/**
 * Provisions accounts once, through the documented CLI (`device import`,
 * `device import --accounts`), into a template data dir; every start copies
 * its registry into a fresh data dir, so runs do not inherit each other's
 * spool or embedded store. Returns the time it took, ms.
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

/** The config file: loopback listeners on port 0 (the broker logs the ones it got), the store, then `extra` lines. */
function switchboardYaml(dataDir: string, tsdb: Partial<TsdbOptions>, extra: string[] = []): string {
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
    ...extra,
    '',
  ].join('\n');
}

/** `switchboard@DIR` as a broker or pipeline name: DIR, another built checkout to run (an A/B in one interleaved run). */
export function otherCheckout(name: string): string | undefined {
  const at = name.indexOf('@');
  return name.startsWith('switchboard') && at > 0 ? name.slice(at + 1) : undefined;
}

/** A fresh data dir with a copy of the template's registry, and its config file. */
function switchboardDir(dir: string, templateDir: string, tsdb: TsdbOptions, extra?: string[]): string {
  const data = join(dir, 'data');
  mkdirSync(data, { recursive: true });
  for (const f of readdirSync(join(templateDir, 'data'))) {
    if (f.startsWith('registry.sqlite')) copyFileSync(join(templateDir, 'data', f), join(data, f));
  }
  const config = join(dir, 'switchboard.yaml');
  writeFileSync(config, switchboardYaml(data, tsdb, extra));
  return config;
}

export interface StartOptions {
  /** Another built checkout to run instead of this one. */
  checkout?: string;
  /** Another build's bin/switchboard.js (overrides checkout). */
  bin?: string;
  /** Lines appended to the config file (e.g. a `bridges:` section). */
  extraConfig?: string[];
  /** Node flags beyond the bin's own and SB_BENCH_NODE_FLAGS (e.g. --cpu-prof). */
  nodeFlags?: string[];
  /** How long SIGTERM may take (the broker flushes its spool first) before SIGKILL. */
  stopGraceMs?: number;
}

/** Starts Switchboard on a fresh copy of the template's registry. */
export async function startSwitchboard(dir: string, templateDir: string, tsdb: TsdbOptions, o: StartOptions = {}): Promise<Server> {
  const config = switchboardDir(dir, templateDir, tsdb, o.extraConfig);
  const bin = o.bin ?? (o.checkout ? join(o.checkout, 'bin', 'switchboard.js') : SWITCHBOARD_BIN);
  // SB_BENCH_NODE_FLAGS: extra node flags for the broker, e.g. --cpu-prof --cpu-prof-dir=….
  const flags = [process.env.SB_BENCH_NODE_FLAGS ?? '', ...brokerNodeFlags(bin), ...(o.nodeFlags ?? [])].join(' ');
  const logFile = join(dir, 'switchboard.log');
  const l = onListening();
  const p = spawnServer(`${process.execPath} ${flags} ${bin} start --config ${config}`, { cwd: dir, logFile, onLine: l.onLine });
  const rec = await listeningLine(p, l.line, 'switchboard');
  const ports = { mqtt: rec.mqtt as number, xmpp: rec.xmpp as number, http: rec.http as number };
  await portOrStop(ports.mqtt, p, 'switchboard');
  // SIGTERM flushes the spool (tsdb.shutdownFlushMs, 5 s by default) before exiting.
  return { name: 'switchboard', pid: p.pid, ports, logFile, alive: () => isAlive(p), stop: () => stopSpawned(p, o.stopGraceMs ?? 10_000) };
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
