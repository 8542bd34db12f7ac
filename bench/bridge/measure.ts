// One measured run of a path (direct or bridged) on fresh servers: Debian's influxd,
// Debian's Mosquitto and Switchboard with the bridge `plant` to that Mosquitto; a
// warm-up, then a fixed number of samples published and polled until all are stored.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { Worker } from '../common/ipc.js';
import { Landed } from '../common/landed.js';
import { cpuSeconds, rssKiB } from '../common/proc.js';
import { metric, startInflux, startMosquitto, startSwitchboard, type Influx, type Server } from '../common/servers.js';
import { nowMs, sleep } from '../common/timing.js';
import { ForeignCpu, fmt, latencySummary, log, settle } from '../common/util.js';
import type { Device, PublishResult } from './devices.js';
import { BRIDGE, DATABASE, MEASUREMENT, P, args, ids, passwords, type Mode } from './options.js';
import { summarize } from './profile.js';

/** Monotonic µs (process.hrtime, the clock of V8's CPU profiles) of an epoch ms time. */
const monoUs = (epochMs: number) => Number(process.hrtime.bigint() / 1000n) + (epochMs - nowMs()) * 1000;

/**
 * Switchboard with this bench's store (InfluxDB, batch 5,000, flush 1 s) and the
 * bridge to Mosquitto; both paths use this same configuration.
 */
function startBroker(dir: string, template: string, o: { influxUrl: string; remotePort: number; profileDir?: string }): Promise<Server> {
  return startSwitchboard(dir, template, { kind: 'influx', url: o.influxUrl, database: DATABASE, batchSize: P.batchSize, flushMs: P.flushMs }, {
    bin: args['switchboard-bin'],
    extraConfig: [
      'bridges:',
      `  - name: ${BRIDGE}`,
      `    url: mqtt://127.0.0.1:${o.remotePort}`,
      `    deviceType: ${MEASUREMENT}`,
      '    topics:',
      '      telemetry: "plant/{device}/data"',
    ],
    nodeFlags: o.profileDir ? [`--cpu-prof --cpu-prof-dir=${o.profileDir}`] : [],
    // SIGTERM: the broker drains its spool (up to 5 s) and exits, writing the CPU profile.
    stopGraceMs: 20_000,
  });
}

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

export interface RunResult {
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

export async function run(mode: Mode, tag: string, c: { dir: string; template: string; gen: Worker; profile?: boolean }): Promise<RunResult> {
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
    const landed = new Landed(count, P.pollMs, nowMs);
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
