// Telemetry benchmark: samples landed in InfluxDB per second (usage: --help, or
// options.ts).
//
// Pipelines (pipelines.ts), one at a time, each on fresh servers (and a fresh
// InfluxDB), interleaved over runs; figures are medians over runs:
//   switchboard  50 MQTT devices → Switchboard (tsdb influx, batch 5,000,
//                flush 1 s, spool on) → InfluxDB
//   peer         50 MQTT devices → Mosquitto → mqtt.js + `influx` writer
//                (batch 5,000, flush 1 s) → InfluxDB
//   raw          line protocol POSTed to InfluxDB in 5,000-point batches
//   aedes-sub    50 MQTT devices → bare aedes → one QoS 1 subscriber on
//                devices/+/telemetry, no store (msg/s delivered): the setup of
//                bench/mqtt, the base of the target
//   aedes        50 MQTT devices → bare aedes, QoS 1, no subscriber, no store
//                (msg/s acknowledged): aedes routing to no one, for reference
//   embedded     50 MQTT devices → Switchboard with its embedded store
// Then one longer switchboard run for memory (60 s; 10 min with --soak).
// Devices publish closed loop at QoS 1: each keeps 10 samples not yet
// acknowledged (PUBACK). See docs/benchmarks.md.
import { join } from 'node:path';
import { runMain } from '../common/cli.js';
import { withWorkers } from '../common/ipc.js';
import { beginBench, finishBench, runInterleaved } from '../common/interleave.js';
import {
  buildSwitchboard, influxVersion, killAll, mosquittoVersion, otherCheckout, provisionSwitchboard,
} from '../common/servers.js';
import { Budget, fmt, load1, log } from '../common/util.js';
import type { Ctx, MemoryResult, PipeResult } from './mqtt-pipeline.js';
import { MEMORY_LABEL, P, PASSWORD, args, memoryEmbedded, names, publishers, quick } from './options.js';
import { aedes, embedded, peer, raw, switchboardInflux } from './pipelines.js';
import { report } from './report.js';

const budget = new Budget(P.budgetMs);

async function main(): Promise<number> {
  const { work: dir, results, errors } = beginBench<PipeResult>({
    bench: 'telemetry', names, runs: P.runs, versions: `InfluxDB ${influxVersion()}; Mosquitto ${mosquittoVersion()}`,
  });
  let mem: MemoryResult | undefined;
  const run: Record<string, (c: Ctx, tag: string) => Promise<PipeResult>> = {
    switchboard: switchboardInflux, peer, raw, 'aedes-sub': (c, tag) => aedes(c, `sub-${tag}`, true), aedes, embedded,
  };
  await withWorkers([[new URL('../common/mqtt-loadgen.ts', import.meta.url), 'devices']], async ([gen]) => {
    const ctx: Ctx = { gen: gen!, dir, template: join(dir, 'template') };
    if (names.some((n) => n.startsWith('switchboard') || n === 'embedded')) {
      log(`switchboard: ${buildSwitchboard(args['no-build'])}`);
      provisionSwitchboard(ctx.template, { devices: publishers.map((p) => ({ id: p.clientId, password: PASSWORD })), accounts: [] });
    }
    const perRunMs = P.warmupMs + P.measureMs + (quick ? 8_000 : 12_000);
    const memoryPipeline = memoryEmbedded ? 'embedded' : 'switchboard';
    const memMs = names.includes(memoryPipeline) ? P.memoryS * 1000 + 15_000 : 0;
    // `switchboard@DIR`: Switchboard → InfluxDB from another built checkout. Each one
    // has its own directories (numbered), so that no two count each other's points.
    names.forEach((name, n) => {
      const checkout = otherCheckout(name);
      if (checkout) run[name] = (c, tag) => switchboardInflux(c, `ab${n}-${tag}`, undefined, checkout);
    });
    for (const name of names) if (!run[name]) errors.set(name, 'unknown pipeline');
    await runInterleaved({
      names, runs: P.runs, budget, results, errors, quietWaitMs: quick ? 2_000 : 5_000, perRunMs, reserveMs: memMs,
      run: (name, i, attempt) => run[name]!(ctx, `${i}-${attempt}`),
    });
    if (memMs && !errors.has(memoryPipeline)) {
      log(`--- memory: ${MEMORY_LABEL} for ${fmt(P.memoryS)} s (load ${fmt(load1(), 2)})`);
      try {
        mem = memoryEmbedded ? await embedded(ctx, 'mem', P.memoryS * 1000) : await switchboardInflux(ctx, 'mem', P.memoryS * 1000);
      } catch (e) {
        errors.set('memory', (e as Error).message);
      }
    }
  });
  return finishBench({ report: report(results, mem, errors), budget, json: args.json, params: P, results, extra: { memory: mem }, errors, dir, keep: args.keep });
}

runMain(main, killAll);
