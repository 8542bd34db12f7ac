// Bridge benchmark: samples landed in InfluxDB per second when 50 thermostats
// publish to a Mosquitto that Switchboard bridges, versus the same 50 devices
// connected to Switchboard's own MQTT port (usage: --help, or options.ts).
//
// Every run starts fresh servers (measure.ts): Debian's influxd, Debian's Mosquitto
// and Switchboard (`bin/switchboard.js start`, tsdb influx with batch 5,000 and
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
// See docs/benchmarks.md, section "Bridges".
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runMain } from '../common/cli.js';
import { withWorkers } from '../common/ipc.js';
import {
  buildSwitchboard, gitDescribe, influxVersion, killAll, mosquittoVersion, provisionSwitchboard,
} from '../common/servers.js';
import { fmt, log, machine } from '../common/util.js';
import { run, type RunResult } from './measure.js';
import { P, args, ids, passwords, type Mode } from './options.js';
import { report } from './report.js';

async function main(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-bridge-bench-'));
  log(`work dir ${dir}; ${machine()}; ${P.runs} run(s) per path of ${fmt(P.samples)} samples (+${fmt(P.warmup)} warm-up); ` +
    `InfluxDB ${influxVersion()}; Mosquitto ${mosquittoVersion()}; switchboard ${gitDescribe()}`);
  const results: RunResult[] = [];
  const errors: string[] = [];
  const profiles: string[] = [];
  const t0 = Date.now();
  const paths = args.paths.split(',').map((x) => x.trim());
  await withWorkers([[new URL('./devices.ts', import.meta.url), 'devices']], async ([gen]) => {
    const ctx = { dir, template: join(dir, 'template'), gen: gen! };
    log(`switchboard: ${buildSwitchboard(args['no-build'])}`);
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
  });
  console.log(report(results, errors));
  for (const p of profiles) console.log(`\n${p}`);
  log(`total ${fmt((Date.now() - t0) / 60_000, 1)} min`);
  if (args.json) writeFileSync(args.json, JSON.stringify({ params: P, date: new Date().toISOString(), machine: machine(), switchboard: gitDescribe(), results, errors }, null, 2));
  if (args.keep || errors.length || args.profile) log(`kept ${dir} (configs, logs${args.profile ? ', CPU profiles' : ''})`);
  else rmSync(dir, { recursive: true, force: true });
  return errors.length ? 1 : 0;
}

runMain(main, killAll);
