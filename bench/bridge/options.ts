// bench/bridge's command line, and the parameters and devices it derives from it.
import { randomBytes } from 'node:crypto';
import { COMMON_OPTIONS, benchArgs } from '../common/cli.js';

const USAGE = `Bridge benchmark: samples landed in InfluxDB per second when 50 thermostats
publish to a Mosquitto that Switchboard bridges, versus the same 50 devices
connected to Switchboard's own MQTT port.

  node --import tsx bench/bridge/run.ts [--quick] [--runs N] [--samples N]
       [--window N] [--poll-ms N] [--paths direct,bridged] [--profile] [--json FILE] [--keep] [--no-build]
       [--switchboard-bin FILE]

  --quick                1 run of 20,000 samples per path
  --runs N               runs per path (default 3; 1 with --quick)
  --samples N            samples per run (default 100,000)
  --window N             samples in flight per device (default 10)
  --poll-ms N            how often the stored count is polled (default 200)
  --paths LIST           direct, bridged or both (default)
  --profile              one more run per path under node --cpu-prof (not counted), summarised
  --json FILE            all per-run figures
  --keep                 keep the work dir (configs, logs)
  --no-build             do not rebuild dist/
  --switchboard-bin FILE another build's bin/switchboard.js (default: this repository's)`;

export const args = benchArgs(USAGE, {
  ...COMMON_OPTIONS,
  samples: { type: 'string' },
  window: { type: 'string', default: '10' },
  'poll-ms': { type: 'string', default: '200' },
  profile: { type: 'boolean', default: false },
  paths: { type: 'string', default: 'direct,bridged' },
  'switchboard-bin': { type: 'string' },
});

const quick = args.quick;
export const P = {
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
export const DATABASE = 'switchboard';
export const MEASUREMENT = 'thermostat';
export const BRIDGE = 'plant';
export const ids = Array.from({ length: P.devices }, (_, i) => `th${String(i).padStart(2, '0')}`);
export const passwords = new Map(ids.map((id) => [id, randomBytes(9).toString('base64url')]));

export type Mode = 'direct' | 'bridged';
export const LABEL: Record<Mode, string> = {
  direct: 'direct: devices → Switchboard MQTT',
  bridged: 'bridged: devices → Mosquitto → bridge → Switchboard',
};
