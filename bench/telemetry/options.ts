// bench/telemetry's command line, and the parameters and devices it derives from it.
import { COMMON_OPTIONS, benchArgs, list } from '../common/cli.js';
import type { Cred } from '../common/mqtt-loadgen.js';

const USAGE = `Telemetry benchmark: samples landed in InfluxDB per second.

  node --import tsx bench/telemetry/run.ts [--quick] [--soak] [--runs N]
       [--pipelines switchboard,peer,raw,aedes-sub,aedes,embedded] [--memory-s N] [--memory-store influx|embedded]
       (\`switchboard@DIR\` in --pipelines: Switchboard → InfluxDB from another built checkout, for an A/B)
       [--raw-concurrency N] [--json FILE] [--keep] [--no-build] [--syscalls]

  --quick             1 short run and a 15-s memory run
  --soak              a 10-min memory run
  --runs N            runs per pipeline (default 3; 1 with --quick)
  --memory-s N        length of the memory run, s (default 60)
  --memory-store S    the store of the memory run: influx (the target's) or embedded (the default configuration)
  --raw-concurrency N line protocol POSTs in flight (default 2)
  --json FILE         all per-run figures
  --keep              keep the work dir (configs, logs)
  --no-build          do not rebuild dist/
  --syscalls          also count each pipeline process's system calls in the measured
                      window (perf stat, as root); halves the rates: counts, not rates`;

export const args = benchArgs(USAGE, {
  ...COMMON_OPTIONS,
  soak: { type: 'boolean', default: false },
  pipelines: { type: 'string', default: 'switchboard,peer,raw,aedes-sub,aedes,embedded' },
  'memory-s': { type: 'string' },
  'memory-store': { type: 'string', default: 'influx' },
  'raw-concurrency': { type: 'string', default: '2' },
  syscalls: { type: 'boolean', default: false },
});

export const quick = args.quick;
export const names = list(args.pipelines);
export const P = {
  runs: Number(args.runs ?? (quick ? 1 : 3)),
  devices: 50,
  window: 10, // samples per device not yet acknowledged
  batchSize: 5_000,
  flushMs: 1_000,
  warmupMs: quick ? 1_000 : 2_000,
  measureMs: quick ? 4_000 : 8_000,
  drainMaxMs: 20_000,
  pollMs: 100,
  rawConcurrency: Number(args['raw-concurrency']),
  memoryS: Number(args['memory-s'] ?? (args.soak ? 600 : quick ? 15 : 60)),
  // Sized for five pipelines; grows with each one beyond.
  budgetMs: (args.soak ? 20 * 60 : quick ? 115 : 590) * 1000 * Math.max(1, names.length / 5),
};

export const PASSWORD = 'bench-pw-1';
export const publishers: Cred[] = Array.from({ length: P.devices }, (_, i) => ({ clientId: `p${i}`, username: `p${i}`, password: PASSWORD }));

export const memoryEmbedded = args['memory-store'] === 'embedded';
export const MEMORY_LABEL = memoryEmbedded ? 'Switchboard → embedded store' : 'Switchboard → InfluxDB';
