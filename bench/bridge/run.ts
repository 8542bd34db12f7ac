// Bridge benchmark (issue 7): samples landed in InfluxDB per second when 50
// thermostats publish to a Mosquitto that Switchboard bridges, versus the same
// 50 devices connected to Switchboard's own MQTT port.
//
//   node --import tsx bench/bridge/run.ts [--quick] [--runs N] [--samples N]
//        [--window N] [--poll-ms N] [--paths direct,bridged] [--profile] [--json FILE] [--keep] [--no-build]
//        [--switchboard-bin FILE]
//
// Every run starts fresh servers: Debian's influxd, Debian's Mosquitto and
// Switchboard (`bin/switchboard.js start`, tsdb influx with batch 5,000 and
// flush 1 s, and the bridge `plant` to that Mosquitto). Both paths use this
// same configuration; only where the devices connect differs:
//   direct   devices → Switchboard MQTT (devices/<id>/telemetry, password auth)
//   bridged  devices → Mosquitto (plant/<id>/data, anonymous) → bridge → Switchboard
// After a warm-up of a few thousand samples (landed and not counted), the
// devices publish a fixed number of samples (100,000; 20,000 with --quick) at
// QoS 1, closed loop (10 unacknowledged per device), and the orchestrator
// polls `SELECT count(*) FROM thermostat` until all of them are stored:
//   landed/s = samples / (first publish → the poll that saw the last one).
// Runs alternate (direct bridged, bridged direct, …); figures are medians.
// --profile adds one bridged and one direct run of the broker under
// `node --cpu-prof` (not counted) and prints where its CPU time went.
// See docs/benchmarks.md, section "Bridges (issue 7)".
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { Worker } from '../common/ipc.js';
import { brokerNodeFlags } from '../common/broker-flags.js';
import {
  RAISE_NOFILE, SWITCHBOARD_BIN, buildSwitchboard, gitDescribe, influxVersion, installCleanup, killAll, metric,
  mosquittoVersion, provisionSwitchboard, startInflux, startMosquitto, type Influx, type Server,
} from '../common/servers.js';
import { ForeignCpu, fmt, latencySummary, log, machine, settle, sleep } from '../common/util.js';
import { cpuSeconds, rssKiB } from '../xmpp/proc.js';
import { median } from '../xmpp/stats.js';
import type { Device, PublishResult } from './devices.js';
import { summarize } from './profile.js';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    samples: { type: 'string' },
    window: { type: 'string', default: '10' },
    'poll-ms': { type: 'string', default: '200' },
    profile: { type: 'boolean', default: false },
    paths: { type: 'string', default: 'direct,bridged' },
    json: { type: 'string' },
    keep: { type: 'boolean', default: false },
    'no-build': { type: 'boolean', default: false },
    /** Another build's bin/switchboard.js, for experiments (default: this repository's). */
    'switchboard-bin': { type: 'string' },
  },
});

const quick = args.quick!;
const P = {
  runs: Number(args.runs ?? (quick ? 1 : 3)),
  devices: 50,
  samples: Number(args.samples ?? (quick ? 20_000 : 100_000)),
  warmup: quick ? 2_000 : 5_000,
  window: Number(args.window),
  pollMs: Number(args['poll-ms']),
  batchSize: 5_000,
  flushMs: 1_000,
  /** Give up when the count has not moved for this long. */
  stallMs: 30_000,
  /** Wait for the 1-minute load average to fall to this before a run... */
  maxLoad: 1.5,
  /** ...but not longer than this. */
  loadWaitMs: 120_000,
  target: 0.7,
};
const DATABASE = 'switchboard';
const MEASUREMENT = 'thermostat';
const BRIDGE = 'plant';
const ids = Array.from({ length: P.devices }, (_, i) => `th${String(i).padStart(2, '0')}`);
const passwords = new Map(ids.map((id) => [id, randomBytes(9).toString('base64url')]));

type Mode = 'direct' | 'bridged';
const LABEL: Record<Mode, string> = {
  direct: 'direct: devices → Switchboard MQTT',
  bridged: 'bridged: devices → Mosquitto → bridge → Switchboard',
};

// ------------------------------------------------------- own processes

// Mosquitto and influxd are started through bench/common (and killed by its
// killAll); Switchboard needs a config with a bridge, so it is spawned here,
// the same way: its own process group, remembered until it exits.
const mine = new Map<number, ChildProcess>();
function killMine(): void {
  for (const pid of mine.keys()) {
    try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ }
  }
  mine.clear();
}

interface Broker extends Server { readonly profileDir?: string }

async function startBroker(dir: string, template: string, o: { influxUrl: string; remotePort: number; profileDir?: string }): Promise<Broker> {
  const data = join(dir, 'data');
  mkdirSync(data, { recursive: true });
  for (const f of readdirSync(join(template, 'data'))) {
    if (f.startsWith('registry.sqlite')) copyFileSync(join(template, 'data', f), join(data, f));
  }
  const config = join(dir, 'switchboard.yaml');
  writeFileSync(config, [
    'domain: localhost',
    `dataDir: ${data}`,
    'xmpp: { host: 127.0.0.1, port: 0, requireTls: false }',
    'mqtt: { host: 127.0.0.1, port: 0, tlsPort: null }',
    'http: { host: 127.0.0.1, port: 0 }',
    `tsdb: { kind: influx, influx: { url: "${o.influxUrl}", database: ${DATABASE} }, batchSize: ${P.batchSize}, flushMs: ${P.flushMs} }`,
    'bridges:',
    `  - name: ${BRIDGE}`,
    `    url: mqtt://127.0.0.1:${o.remotePort}`,
    `    deviceType: ${MEASUREMENT}`,
    '    topics:',
    '      telemetry: "plant/{device}/data"',
    '',
  ].join('\n'));
  const logFile = join(dir, 'switchboard.log');
  const bin = args['switchboard-bin'] ?? SWITCHBOARD_BIN;
  const flags = [...brokerNodeFlags(bin), ...(o.profileDir ? [`--cpu-prof --cpu-prof-dir=${o.profileDir}`] : [])].join(' ');
  const child = spawn('bash', ['-c', `${RAISE_NOFILE}; exec ${process.execPath} ${flags} ${bin} start --config ${config}`], {
    cwd: dir, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid!;
  mine.set(pid, child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => { mine.delete(pid); resolve(); }));
  const out = createWriteStream(logFile, { flags: 'a' });
  child.stderr!.pipe(out);
  const listening = new Promise<Record<string, unknown>>((resolve) => {
    createInterface({ input: child.stdout! }).on('line', (l) => {
      out.write(l + '\n');
      if (!l.includes('"listening"')) return;
      try {
        const rec = JSON.parse(l) as Record<string, unknown>;
        if (rec.msg === 'listening') resolve(rec);
      } catch { /* not JSON */ }
    });
  });
  const stop = async (graceMs = 20_000) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    // SIGTERM: the broker drains its spool (up to 5 s) and exits, writing the CPU profile.
    try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
    if (await Promise.race([exited.then(() => false), sleep(graceMs).then(() => true)])) {
      try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ }
      await exited;
    }
    try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ }
  };
  let rec: Record<string, unknown>;
  try {
    rec = await Promise.race([
      listening,
      exited.then((): never => { throw new Error(`switchboard exited during startup (log: ${logFile})`); }),
      sleep(60_000).then((): never => { throw new Error(`switchboard logged no "listening" line within 60 s (log: ${logFile})`); }),
    ]);
  } catch (e) {
    await stop(2_000);
    throw e;
  }
  return {
    name: 'switchboard', pid, logFile, profileDir: o.profileDir,
    ports: { mqtt: rec.mqtt as number, xmpp: rec.xmpp as number, http: rec.http as number },
    stop: () => stop(),
  };
}

// ------------------------------------------------------------- helpers

const nowMs = () => performance.timeOrigin + performance.now();
/** Monotonic µs (process.hrtime, the clock of V8's CPU profiles) of an epoch ms time. */
const monoUs = (epochMs: number) => Number(process.hrtime.bigint() / 1000n) + (epochMs - nowMs()) * 1000;

/** `uptime` before a run; waits (bounded) while others keep the machine loaded. */
async function checkLoad(): Promise<{ uptime: string; load1: number; waitedS: number }> {
  const uptime = () => { try { return execFileSync('uptime').toString().trim(); } catch { return `load average: ${loadavg().map((x) => x.toFixed(2)).join(', ')}`; } };
  const t0 = Date.now();
  let up = uptime();
  log(`uptime: ${up}`);
  while (loadavg()[0]! > P.maxLoad && Date.now() - t0 < P.loadWaitMs) {
    if (Date.now() - t0 < 1_000) log(`1-minute load ${fmt(loadavg()[0], 2)} > ${P.maxLoad}: waiting up to ${P.loadWaitMs / 1000} s for it to drop`);
    await sleep(5_000);
  }
  const waitedS = Math.round((Date.now() - t0) / 1000);
  if (waitedS > 0) {
    up = uptime();
    log(`after waiting ${waitedS} s: ${up}${loadavg()[0]! > P.maxLoad ? ' (STILL ABOVE the threshold; measuring anyway)' : ''}`);
  }
  return { uptime: up, load1: loadavg()[0]!, waitedS };
}

/** Polls a "stored so far" count; times are epoch ms (mid-request). */
class Landed {
  readonly polls: Array<[number, number]> = [];
  private running = true;
  private done: Promise<void>;
  lastChange = nowMs();
  constructor(read: () => Promise<number>, intervalMs: number) {
    this.done = (async () => {
      while (this.running) {
        const t0 = nowMs();
        try {
          const n = await read();
          if (n !== this.last) this.lastChange = nowMs();
          this.polls.push([(t0 + nowMs()) / 2, n]);
        } catch { /* busy: next poll */ }
        await sleep(Math.max(0, intervalMs - (nowMs() - t0)));
      }
    })();
  }
  get last(): number { return this.polls[this.polls.length - 1]?.[1] ?? 0; }
  /** Time of the first poll that saw at least n. */
  firstAtLeast(n: number): number | undefined { return this.polls.find(([, c]) => c >= n)?.[0]; }
  async stop(): Promise<void> { this.running = false; await this.done; }
}

/**
 * Publish → landed, first in first out: the k-th sample stored is taken to be
 * the k-th published (the spool, the drainer and Mosquitto's queue keep
 * order). "Landed" is the poll that first saw it, so each figure is late by
 * up to the poll interval plus the duration of the count query.
 */
function fifoLatency(pub: PublishResult, landed: Landed, base: number) {
  const lat: number[] = [];
  let k = 0;
  for (const [t, n] of landed.polls) {
    const upTo = Math.min(n - base, pub.sends.length);
    for (; k < upTo; k++) lat.push(t - (pub.firstSend + pub.sends[k]!));
  }
  return latencySummary(lat);
}

function devicesFor(mode: Mode): Device[] {
  return ids.map((id) => mode === 'bridged'
    ? { clientId: id, topic: `plant/${id}/data` }
    : { clientId: id, username: id, password: passwords.get(id)!, topic: `devices/${id}/telemetry` });
}

// ---------------------------------------------------------------- a run

interface RunResult {
  mode: Mode;
  tag: string;
  samples: number;
  stored: number;
  landedPerSec: number;
  publishPerSec: number;
  seconds: number;
  p50: number; p99: number; max: number;
  cpu: { switchboard: number; mosquitto: number; influxd: number; devices: number };
  /** Switchboard's CPU time per stored sample, µs: less sensitive to a busy machine than rates. */
  cpuUsPerSample: number;
  rssMiB: number;
  bridgeIn?: number;
  uptime: string;
  load1: number;
  loadWaitS: number;
  foreignCpuPct: number;
  incomplete?: string;
  profile?: string;
}

async function run(mode: Mode, tag: string, c: { dir: string; template: string; gen: Worker; profile?: boolean }): Promise<RunResult> {
  const load = await checkLoad();
  const dir = join(c.dir, tag);
  const started: Server[] = [];
  try {
    const influx = await startInflux(join(dir, 'influx')) as Influx;
    started.push(influx);
    // Debian's defaults otherwise (max_inflight_messages 20 towards the bridge).
    const mosq = await startMosquitto(join(dir, 'mosquitto'), ['max_queued_messages 1000000']);
    started.push(mosq);
    const profileDir = c.profile ? join(dir, 'profile') : undefined;
    const sb = await startBroker(join(dir, 'switchboard'), c.template, { influxUrl: influx.url, remotePort: mosq.ports.mqtt!, profileDir });
    started.push(sb);
    const http = sb.ports.http!;
    for (let end = Date.now() + 20_000; ;) {
      if (await metric(http, 'switchboard_bridge_connected').catch(() => 0) >= 1) break;
      if (Date.now() > end) throw new Error(`bridge did not connect to Mosquitto within 20 s (log: ${sb.logFile})`);
      await sleep(100);
    }
    const target = { host: '127.0.0.1', port: mode === 'bridged' ? mosq.ports.mqtt! : sb.ports.mqtt! };
    await c.gen.call('setup', { target, devices: devicesFor(mode) });
    // Unique sample times: warm-up and measured samples each get their own range, in the past.
    const tsBase = Date.now() - 3_600_000;
    const count = () => influx.count(DATABASE, MEASUREMENT);

    // Warm-up: the same path, stored and waited for, then taken as the baseline.
    await c.gen.call<PublishResult>('publish', { total: P.warmup, window: P.window, startAt: Date.now(), tsBase: tsBase - P.warmup, maxMs: 60_000 });
    let base = 0;
    for (let end = Date.now() + 60_000; (base = await count()) < P.warmup && Date.now() < end;) await sleep(200);
    if (base < P.warmup) throw new Error(`warm-up: only ${base} of ${P.warmup} samples stored after 60 s`);
    await settle([sb.pid, mosq.pid, influx.pid, c.gen.pid], 5_000);

    const pids = { switchboard: sb.pid, mosquitto: mosq.pid, influxd: influx.pid, devices: c.gen.pid };
    const cpu0 = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, cpuSeconds(p)])) as Record<keyof typeof pids, number>;
    const foreign = new ForeignCpu();
    const bridgeIn0 = await metric(http, 'switchboard_bridge_messages_in');
    const landed = new Landed(count, P.pollMs);
    const goal = base + P.samples;
    let rss = 0;
    const rssTimer = setInterval(() => { rss = Math.max(rss, rssKiB(sb.pid)); }, 500);
    let pub!: PublishResult;
    let incomplete: string | undefined;
    try {
      pub = await c.gen.call<PublishResult>('publish', { total: P.samples, window: P.window, startAt: Date.now() + 100, tsBase, maxMs: 600_000 });
      if (pub.timedOut) incomplete = `devices: only ${pub.acked} of ${P.samples} samples acknowledged in 600 s`;
      while (landed.last < goal) {
        if (nowMs() - landed.lastChange > P.stallMs) {
          incomplete = `stored count stuck at ${fmt(landed.last - base)} of ${fmt(P.samples)} for ${P.stallMs / 1000} s`;
          break;
        }
        await sleep(50);
      }
    } finally {
      clearInterval(rssTimer);
      await landed.stop();
    }
    const tDone = landed.firstAtLeast(goal) ?? landed.polls[landed.polls.length - 1]![0];
    const windowUs: [number, number] = [monoUs(pub.firstSend), monoUs(tDone)];
    const secs = Math.max(1e-3, (tDone - pub.firstSend) / 1000);
    const cpu = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, ((cpuSeconds(p) - cpu0[k as keyof typeof pids]) / secs) * 100])) as RunResult['cpu'];
    const stored = (await count()) - base;
    const cpuUsPerSample = ((cpu.switchboard / 100) * secs * 1e6) / Math.max(1, stored);
    const bridgeIn = (await metric(http, 'switchboard_bridge_messages_in')) - bridgeIn0;
    const lat = fifoLatency(pub, landed, base);
    const r: RunResult = {
      mode, tag, samples: P.samples, stored,
      landedPerSec: Math.min(stored, P.samples) / secs,
      publishPerSec: pub.acked / ((pub.lastAck - pub.firstSend) / 1000),
      seconds: secs, p50: lat.p50, p99: lat.p99, max: lat.max, cpu, cpuUsPerSample, rssMiB: rss / 1024,
      bridgeIn: mode === 'bridged' ? bridgeIn : undefined,
      uptime: load.uptime, load1: load.load1, loadWaitS: load.waitedS, foreignCpuPct: foreign.pct(), incomplete,
    };
    log(`${mode}: ${fmt(r.stored)} of ${fmt(P.samples)} samples stored in ${fmt(secs, 2)} s = ${fmt(r.landedPerSec)} landed/s; ` +
      `devices published at ${fmt(r.publishPerSec)}/s (done after ${fmt((pub.lastAck - pub.firstSend) / 1000, 2)} s); ` +
      `publish → landed p50 ${fmt(r.p50)} ms, p99 ${fmt(r.p99)} ms; CPU % of a core: switchboard ${fmt(cpu.switchboard)}, ` +
      `mosquitto ${fmt(cpu.mosquitto)}, influxd ${fmt(cpu.influxd)}, devices ${fmt(cpu.devices)} (switchboard ${fmt(cpuUsPerSample)} µs CPU/sample); others ${fmt(Math.max(0, r.foreignCpuPct))}%; ` +
      `switchboard RSS max ${fmt(r.rssMiB, 1)} MiB` + (incomplete ? `; INCOMPLETE: ${incomplete}` : ''));
    await c.gen.call('teardown');
    if (profileDir) {
      await sb.stop();
      const f = existsSync(profileDir) ? readdirSync(profileDir).find((x) => x.endsWith('.cpuprofile')) : undefined;
      r.profile = f ? summarize(join(profileDir, f), 25, windowUs).text : `no profile written in ${profileDir}`;
    }
    return r;
  } finally {
    await c.gen.call('teardown').catch(() => {});
    for (const s of started.reverse()) await s.stop();
  }
}

// -------------------------------------------------------------- report

function report(results: RunResult[], errors: string[]): string {
  const by = (m: Mode) => results.filter((r) => r.mode === m);
  const med = (rs: RunResult[], f: (r: RunResult) => number) => median(rs.map(f));
  const lines: string[] = [];
  const head = ['path', 'landed/s', 'runs (landed/s)', 'devices publish/s', 'publish → landed p50 / p99 ms',
    'stored / sent', 'Switchboard CPU µs/sample', 'CPU % of a core: switchboard / mosquitto / influxd / devices'];
  lines.push(`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`);
  for (const m of ['direct', 'bridged'] as const) {
    const rs = by(m);
    if (!rs.length) continue;
    lines.push(`| ${[LABEL[m], `**${fmt(med(rs, (r) => r.landedPerSec))}**`, rs.map((r) => fmt(r.landedPerSec)).join(', '),
      fmt(med(rs, (r) => r.publishPerSec)), `${fmt(med(rs, (r) => r.p50))} / ${fmt(med(rs, (r) => r.p99))}`,
      rs.every((r) => r.stored === r.samples) ? `all (${fmt(rs[0]!.samples)})` : rs.map((r) => `${fmt(r.stored)} / ${fmt(r.samples)}`).join('; '),
      fmt(med(rs, (r) => r.cpuUsPerSample)),
      `${fmt(med(rs, (r) => r.cpu.switchboard))} / ${fmt(med(rs, (r) => r.cpu.mosquitto))} / ${fmt(med(rs, (r) => r.cpu.influxd))} / ${fmt(med(rs, (r) => r.cpu.devices))}`,
    ].join(' | ')} |`);
  }
  const d = med(by('direct'), (r) => r.landedPerSec), b = med(by('bridged'), (r) => r.landedPerSec);
  if (by('direct').length && by('bridged').length) {
    lines.push('', '| target | measured | |', '|---|---|---|',
      `| bridged landed/s ≥ ${P.target * 100} % of direct | ${fmt(b)} / ${fmt(d)} = **${fmt((b / d) * 100)} %** | ${b >= P.target * d ? 'met' : '**missed**'} |`);
  }
  lines.push('', 'Load before each run (uptime; runs wait up to 2 min for a 1-minute load ≤ 1.5):');
  for (const r of results) {
    lines.push(`- ${r.tag}: ${r.uptime.replace(/^.*load average/, 'load average')}` +
      (r.loadWaitS ? ` (after waiting ${r.loadWaitS} s${r.load1 > P.maxLoad ? ', still above 1.5' : ''})` : '') +
      `; CPU used by other processes during the run: ${fmt(Math.max(0, r.foreignCpuPct))}% of a core` +
      (r.incomplete ? `; INCOMPLETE: ${r.incomplete}` : ''));
  }
  for (const e of errors) lines.push('', `ERROR ${e}`);
  return lines.join('\n');
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-bridge-bench-'));
  log(`work dir ${dir}; ${machine()}; ${P.runs} run(s) per path of ${fmt(P.samples)} samples (+${fmt(P.warmup)} warm-up); ` +
    `InfluxDB ${influxVersion()}; Mosquitto ${mosquittoVersion()}; switchboard ${gitDescribe()}`);
  const gen = new Worker(new URL('./devices.ts', import.meta.url), 'devices');
  installCleanup(() => { gen.kill(); killMine(); });
  const results: RunResult[] = [];
  const errors: string[] = [];
  const profiles: string[] = [];
  const ctx = { dir, template: join(dir, 'template'), gen };
  const t0 = Date.now();
  const paths = args.paths!.split(',').map((x) => x.trim());
  try {
    log(`switchboard: ${buildSwitchboard(args['no-build']!)}`);
    provisionSwitchboard(ctx.template, { devices: ids.map((id) => ({ id, password: passwords.get(id)! })), accounts: [] });
    for (let i = 1; i <= P.runs; i++) {
      const order: Mode[] = i % 2 ? ['direct', 'bridged'] : ['bridged', 'direct'];
      for (const mode of order.filter((m) => paths.includes(m))) {
        log(`--- run ${i}/${P.runs}: ${mode}`);
        try {
          results.push(await run(mode, `${mode}-${i}`, ctx));
        } catch (e) {
          errors.push(`${mode} run ${i}: ${(e as Error).message}`);
          log(`${mode}: ERROR ${(e as Error).message}`);
        }
      }
    }
    if (args.profile) {
      for (const mode of (['bridged', 'direct'] as const).filter((m) => paths.includes(m))) {
        log(`--- profile: ${mode} under node --cpu-prof (not counted)`);
        try {
          const r = await run(mode, `profile-${mode}`, { ...ctx, profile: true });
          profiles.push(`${mode} (${fmt(r.landedPerSec)} landed/s under the profiler):\n${r.profile}`);
        } catch (e) {
          errors.push(`profile ${mode}: ${(e as Error).message}`);
        }
      }
    }
  } finally {
    gen.kill();
    killMine();
    killAll();
  }
  console.log(report(results, errors));
  for (const p of profiles) console.log(`\n${p}`);
  log(`total ${fmt((Date.now() - t0) / 60_000, 1)} min`);
  if (args.json) writeFileSync(args.json, JSON.stringify({ params: P, date: new Date().toISOString(), machine: machine(), switchboard: gitDescribe(), results, errors }, null, 2));
  if (args.keep || errors.length || args.profile) log(`kept ${dir} (configs, logs${args.profile ? ', CPU profiles' : ''})`);
  else rmSync(dir, { recursive: true, force: true });
  return errors.length ? 1 : 0;
}

main().then((code) => process.exit(code), (e: unknown) => {
  console.error(e);
  killMine();
  killAll();
  process.exit(1);
});
