// The pipelines bench/telemetry compares, each on fresh servers: Switchboard →
// InfluxDB, the peer pipeline (Mosquitto + mqtt.js → `influx` writer), raw line
// protocol, bare aedes (with and without a subscriber), and Switchboard → its
// embedded store. Each returns the figures of one run.
import { join } from 'node:path';
import { Worker } from '../common/ipc.js';
import type { ClosedResult } from '../common/mqtt-loadgen.js';
import { cpuSeconds } from '../common/proc.js';
import { metric, startAedes, startInflux, startMosquitto, startSwitchboard, withServers, type Influx, type Server } from '../common/servers.js';
import { readingsAt } from '../common/timing.js';
import { ForeignCpu, fmt, latencySummary, load1, log, settle } from '../common/util.js';
import { mqttPipeline, times, type Ctx, type MemoryResult, type PipeResult } from './mqtt-pipeline.js';
import { P, publishers } from './options.js';

/** Switchboard → InfluxDB; `checkout`: another built checkout's broker. */
export async function switchboardInflux(c: Ctx, tag: string, measureMs?: number, checkout?: string): Promise<MemoryResult> {
  let influx!: Influx;
  return withServers([
    async () => (influx = await startInflux(join(c.dir, `sb-influx-${tag}`))),
    () => startSwitchboard(join(c.dir, `sb-${tag}`), c.template,
      { kind: 'influx', url: influx.url, database: 'switchboard', batchSize: P.batchSize, flushMs: P.flushMs }, { checkout }),
  ], async ([, sb]) => {
    const r = await mqttPipeline(c, {
      name: 'switchboard → influx', mqttPort: sb!.ports.mqtt!, procs: { switchboard: sb!.pid, influxd: influx.pid }, rssPid: sb!.pid,
      landedCount: () => influx.pointsWritten('switchboard'),
      backlog: () => metric(sb!.ports.http!, 'switchboard_store_backlog_samples'),
      measureMs, rssEveryMs: measureMs ? 5_000 : 1_000,
    });
    r.stored = await influx.count('switchboard', 'thermostat');
    if (r.stored !== r.sent) log(`switchboard → influx: ${fmt(r.stored)} distinct points stored for ${fmt(r.sent)} samples sent`);
    return r;
  });
}

/** Mosquitto + mqtt.js → `influx` writer → InfluxDB. */
export async function peer(c: Ctx, tag: string): Promise<PipeResult> {
  let influx!: Influx, mosq!: Server;
  const writer = new Worker(new URL('./peer-writer.ts', import.meta.url), 'peer writer');
  try {
    return await withServers([
      async () => (influx = await startInflux(join(c.dir, `peer-influx-${tag}`))),
      // max_inflight_messages 0: see bench/mqtt/run.ts (Debian 2.0.11's inflight-quota bug).
      async () => (mosq = await startMosquitto(join(c.dir, `peer-mosquitto-${tag}`), ['max_inflight_messages 0'])),
    ], async () => {
      await writer.call('start', { mqttPort: mosq.ports.mqtt, influxUrl: influx.url, database: 'peer', batchSize: P.batchSize, flushMs: P.flushMs });
      const r = await mqttPipeline(c, {
        name: 'mosquitto + mqtt.js/influx writer', mqttPort: mosq.ports.mqtt!, procs: { mosquitto: mosq.pid, writer: writer.pid, influxd: influx.pid },
        landedCount: () => influx.pointsWritten('peer'),
        exactLatency: {
          window: (w) => writer.call('setWindow', w),
          get: async () => (await writer.call<{ latency: ReturnType<typeof latencySummary> }>('stats')).latency,
        },
      });
      const st = await writer.call<{ failed: number; firstError: string }>('stats');
      if (st.failed) r.note = `writer: ${st.failed} points failed (${st.firstError})`;
      r.stored = await influx.count('peer', 'thermostat');
      if (r.stored !== r.sent) log(`peer: ${fmt(r.stored)} distinct points stored for ${fmt(r.sent)} samples sent`);
      return r;
    });
  } finally {
    writer.kill();
  }
}

/** Line protocol POSTed straight to InfluxDB. */
export async function raw(c: Ctx, tag: string): Promise<PipeResult> {
  const w = new Worker(new URL('./raw-writer.ts', import.meta.url), 'raw writer');
  try {
    return await withServers([() => startInflux(join(c.dir, `raw-influx-${tag}`))], async ([s]) => {
      const influx = s as Influx;
      await settle([influx.pid, w.pid]);
      const foreign = new ForeignCpu();
      const t = times();
      const [r, [[cpu0, gen0], [cpu1, gen1]]] = await Promise.all([
        w.call<{ pointsInWindow: number; seconds: number; errors: number; firstError: string; postMs: ReturnType<typeof latencySummary> }>(
          'run', { url: influx.url, database: 'raw', batchSize: P.batchSize, concurrency: P.rawConcurrency, devices: P.devices, ...t }),
        readingsAt(t.from, t.to, () => [cpuSeconds(influx.pid), w.cpu()] as const),
      ]);
      if (r.errors) throw new Error(`raw writes failed: ${r.firstError}`);
      const secs = (t.to - t.from) / 1000;
      const res: PipeResult = {
        landedPerSec: r.pointsInWindow / r.seconds, p50: r.postMs.p50, p99: r.postMs.p99,
        cpuPct: ((cpu1 - cpu0) / secs) * 100, genCpuPct: ((gen1 - gen0) / secs) * 100,
        foreignCpuPct: foreign.pct(), load1: load1(),
      };
      log(`raw line protocol: ${fmt(res.landedPerSec)} points/s (${P.rawConcurrency} POSTs of ${fmt(P.batchSize)} in flight), ` +
        `POST p50 ${fmt(res.p50)} ms, p99 ${fmt(res.p99)} ms; CPU influxd ${fmt(res.cpuPct)}% / writer ${fmt(res.genCpuPct)}%`);
      return res;
    });
  } finally {
    w.kill();
  }
}

/**
 * Bare aedes at QoS 1, no store. With `subscribed`, one service subscribes to
 * devices/+/telemetry at QoS 1 and the closed loop is end to end (a device keeps 10
 * samples the subscriber has not yet received): bench/mqtt's QoS 1 setup, the base
 * of the target (docs/benchmarks.md). Without, aedes acknowledges publishes it
 * routes to no one.
 */
export async function aedes(c: Ctx, tag: string, subscribed = false): Promise<PipeResult> {
  return withServers([() => startAedes(join(c.dir, `aedes-${tag}`))], async ([s]) => {
    const subscriber = subscribed ? { clientId: 'sub', filter: 'devices/+/telemetry', qos: 1 as const } : undefined;
    await c.gen.call('setup', { target: { host: '127.0.0.1', port: s!.ports.mqtt! }, publishers, subscriber });
    await settle([s!.pid, c.gen.pid]);
    const foreign = new ForeignCpu();
    const w = times();
    const [r, [[cpu0, gen0], [cpu1, gen1]]] = await Promise.all([
      c.gen.call<ClosedResult>('closed', { qos: 1, window: P.window, ...w }),
      readingsAt(w.from, w.to, () => [cpuSeconds(s!.pid), c.gen.cpu()] as const),
    ]);
    await c.gen.call('teardown');
    const secs = (w.to - w.from) / 1000;
    const res: PipeResult = {
      landedPerSec: (subscribed ? r.delivered : r.acked) / secs, acceptedPerSec: r.acked / secs,
      p50: subscribed ? r.latency.p50 : undefined, p99: subscribed ? r.latency.p99 : undefined,
      cpuPct: ((cpu1 - cpu0) / secs) * 100, genCpuPct: ((gen1 - gen0) / secs) * 100, foreignCpuPct: foreign.pct(), load1: load1(),
    };
    log(subscribed
      ? `bare aedes → subscriber: ${fmt(res.landedPerSec)} QoS 1 msg/s delivered, p50 ${fmt(res.p50, 2)} ms, p99 ${fmt(res.p99, 2)} ms; CPU ${fmt(res.cpuPct)}% / devices and subscriber ${fmt(res.genCpuPct)}%`
      : `bare aedes: ${fmt(res.acceptedPerSec)} QoS 1 msg/s acknowledged (no subscriber, no store); CPU ${fmt(res.cpuPct)}% / devices ${fmt(res.genCpuPct)}%`);
    return res;
  });
}

/** Switchboard → its embedded store. */
export async function embedded(c: Ctx, tag: string, measureMs?: number): Promise<MemoryResult> {
  return withServers([() => startSwitchboard(join(c.dir, `emb-${tag}`), c.template, { kind: 'embedded', batchSize: P.batchSize, flushMs: P.flushMs })],
    async ([sb]) => mqttPipeline(c, {
      name: 'switchboard → embedded store', mqttPort: sb!.ports.mqtt!, procs: { switchboard: sb!.pid }, rssPid: sb!.pid,
      // /metrics is served by the broker itself: polled less often, to cost it little.
      landedCount: () => metric(sb!.ports.http!, 'switchboard_store_written_samples_total'), pollMs: 250,
      backlog: () => metric(sb!.ports.http!, 'switchboard_store_backlog_samples'),
      measureMs, rssEveryMs: measureMs ? 5_000 : 1_000,
    }));
}
