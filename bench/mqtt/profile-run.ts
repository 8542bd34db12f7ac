// Profiles Switchboard under the QoS 1 closed-loop load of bench/mqtt (usage: --help):
// writes a V8 CPU profile of the broker and prints a summary (bench/bridge/profile.ts).
// Every run prints the broker's CPU (all its threads) per message or per connect in
// the loaded window: a steadier A/B figure than a rate on two shared cores.
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchArgs } from '../common/cli.js';
import { Worker } from '../common/ipc.js';
import { installCleanup, killAll, provisionSwitchboard, startInflux, startSwitchboard } from '../common/servers.js';
import { summarize } from '../bridge/profile.js';
import { cpuSeconds } from '../common/proc.js';
import type { ClosedResult, CollectResult, ConnectResult, Cred } from '../common/mqtt-loadgen.js';

const USAGE = `Profiles Switchboard under the QoS 1 closed-loop load of bench/mqtt.

  node --import tsx bench/mqtt/profile-run.ts [--qos 0|1 | --flood | --connects | --reconnects]
       [--seconds N] [--dir DIR] [--no-profile] [--checkout DIR] [--influx]

  --qos 0|1      QoS of the closed loop (default 1)
  --flood        a QoS 0 flood instead
  --connects     50 parallel first-time CONNECTs of provisioned devices instead of publishing
  --reconnects   the same over 2,000 devices that connected once before the profiled window
  --seconds N    length of the load (default 8)
  --dir DIR      where the V8 CPU profile goes (default: the work dir)
  --no-profile   the same load without the profiler, to watch the broker (bench/common/watch-broker.ts)
  --checkout DIR run the broker of another built checkout (an A/B against this one)
  --influx       the store is a private InfluxDB (bench/telemetry's pipeline) instead of the embedded one`;

const args = benchArgs(USAGE, {
  flood: { type: 'boolean', default: false },
  connects: { type: 'boolean', default: false },
  reconnects: { type: 'boolean', default: false },
  'no-profile': { type: 'boolean', default: false },
  qos: { type: 'string', default: '1' },
  seconds: { type: 'string', default: '8' },
  dir: { type: 'string' },
  checkout: { type: 'string' },
  influx: { type: 'boolean', default: false },
});
const qos = Number(args.qos) as 0 | 1;
const work = mkdtempSync(join(tmpdir(), 'switchboard-mqtt-prof-'));
const profDir = args.dir ?? join(work, 'prof');
if (!args['no-profile']) process.env.SB_BENCH_NODE_FLAGS = `--cpu-prof --cpu-prof-dir=${profDir}`;
const PASSWORD = 'bench-pw-1';
const publishers: Cred[] = Array.from({ length: 50 }, (_, i) => ({ clientId: `p${i}`, username: `p${i}`, password: PASSWORD }));
const template = join(work, 'template');
const fresh: Cred[] = args.connects || args.reconnects ? Array.from({ length: args.reconnects ? 2_000 : 20_000 }, (_, i) => ({ clientId: `c${i}`, username: `c${i}`, password: PASSWORD })) : [];
provisionSwitchboard(template, { devices: [...publishers, ...fresh].map((d) => ({ id: d.clientId, password: PASSWORD })), accounts: [{ name: 'sub', role: 'service', password: PASSWORD }] });
const a = new Worker(new URL('../common/mqtt-loadgen.ts', import.meta.url), 'generator A');
installCleanup(() => a.kill());
const influx = args.influx ? await startInflux(join(work, 'influx')) : null;
const srv = await startSwitchboard(join(work, 'sb'), template, influx ? { kind: 'influx', url: influx.url, database: 'switchboard', batchSize: 5_000, flushMs: 1_000 } : { kind: 'embedded' }, { checkout: args.checkout });
/** Prints the broker's CPU per operation over what `load` did. */
const perOp = async <T>(load: () => Promise<T>, count: (r: T) => number, what: string): Promise<T> => {
  const cpu0 = cpuSeconds(srv.pid!);
  const r = await load();
  console.log(`broker CPU ${((cpuSeconds(srv.pid!) - cpu0) * 1e6 / count(r)).toFixed(1)} µs per ${what} (all threads, whole call)`);
  return r;
};
const target = { host: '127.0.0.1', port: srv.ports.mqtt! };
await a.call('setTarget', { target });
const now = Date.now();
const ms = Number(args.seconds) * 1000;
const sub = { clientId: 'sub', username: 'sub', password: PASSWORD, filter: 'devices/+/telemetry', qos };
if (args.connects || args.reconnects) {
  if (args.reconnects) {
    await a.call<ConnectResult>('connectIdle', { creds: fresh, concurrency: 50 });
    await a.call('dropIdle');
  }
  const r = await perOp(() => a.call<ConnectResult>('connects', { creds: fresh, concurrency: 50, durationMs: ms }), (r) => r.count, 'connect');
  console.log(`connects: ${(r.count / r.seconds).toFixed(0)}/s ${args.reconnects ? 'reconnecting' : 'first-time'} (${r.count} in ${r.seconds.toFixed(1)} s, ${r.errors} errors)`);
} else if (args.flood) {
  const b = new Worker(new URL('../common/mqtt-loadgen.ts', import.meta.url), 'generator B');
  await a.call('setup', { target, publishers });
  await b.call('subscribe', { ...sub, target });
  const t0 = Date.now() + 200;
  const [s, r] = await Promise.all([a.call<{ sent: number }>('blast', { startAt: t0, to: t0 + ms }), b.call<CollectResult>('collect', { from: t0 + 1000, to: t0 + ms, drainMaxMs: 5000 })]);
  console.log(`flood: sent ${s.sent}, received ${r.received}, ${(r.delivered / r.seconds).toFixed(0)}/s in window, p99 ${r.latency.p99}, drain ${r.drainMs} ms`);
  console.log((await (await fetch(`http://127.0.0.1:${srv.ports.http}/metrics`)).text()).split('\n').filter((l) => /^switchboard_/.test(l) && !/ 0$/.test(l)).join('\n'));
  b.kill();
} else {
  // With InfluxDB, as bench/telemetry: no subscriber, a sample's loop ends at its PUBACK.
  await a.call('setup', { target, publishers, subscriber: influx ? undefined : sub });
  const r = await perOp(() => a.call<ClosedResult>('closed', { qos, window: 10, startAt: now, from: now + 1000, to: now + ms }), (r) => r.sent, 'message');
  const secs = (ms - 1000) / 1000;
  console.log(influx ? `acknowledged ${(r.acked / secs).toFixed(0)}/s` : `delivered ${(r.delivered / secs).toFixed(0)}/s p50 ${r.latency.p50} p99 ${r.latency.p99}`);
}
await a.call('teardown');
a.kill();
await srv.stop();
await influx?.stop();
killAll();
if (!args['no-profile']) {
  const f = readdirSync(profDir).find((x) => x.endsWith('.cpuprofile'));
  console.log(f ? summarize(join(profDir, f), 40).text : `no profile in ${profDir}; log ${srv.logFile}`);
}
