// bench/mqtt's command line, and the parameters and devices it derives from it.
import { COMMON_OPTIONS, benchArgs, list } from '../common/cli.js';
import type { Cred } from '../common/mqtt-loadgen.js';

const USAGE = `MQTT benchmark: Mosquitto, bare aedes and Switchboard side by side on loopback.

  node --import tsx bench/mqtt/run.ts [--quick] [--brokers mosquitto,aedes,switchboard]
       (\`switchboard@DIR\` in --brokers: another built checkout, for an interleaved A/B)
       [--runs N] [--idle N] [--json FILE] [--keep] [--no-build]
       [--qos1-only | --connects-only]

  --quick          1 short run with 1,000 idle devices (~2 min)
  --runs N         runs per broker (default 3; 1 with --quick)
  --idle N         idle devices of the memory phase (default 10,000)
  --json FILE      all per-run figures
  --keep           keep the work dir (configs, logs)
  --no-build       do not rebuild dist/
  --qos1-only      only the QoS 1 throughput phase: a quick A/B
  --connects-only  only the connect-rate phases (first-time and reconnect storms)`;

export const args = benchArgs(USAGE, {
  ...COMMON_OPTIONS,
  brokers: { type: 'string', default: 'mosquitto,aedes,switchboard' },
  idle: { type: 'string' },
  'qos1-only': { type: 'boolean', default: false },
  'connects-only': { type: 'boolean', default: false },
});
/** Only one group of phases is run: no memory phase, shorter runs. */
export const onePhase = args['qos1-only'] || args['connects-only'];

export const quick = args.quick;
export const names = list(args.brokers);
export const P = {
  runs: Number(args.runs ?? (quick ? 1 : 3)),
  devices: 50,
  window: 10, // closed loop: messages per publisher not yet received by the subscriber
  idle: Number(args.idle ?? (quick ? 1_000 : 10_000)),
  warmupMs: quick ? 500 : 1_000,
  measureMs: quick ? 1_500 : 3_000,
  fixedRate: 20_000,
  stallRate: 1_000, // QoS 1 msg/s of the 50 connected devices during the connect storm
  connectMs: quick ? 1_500 : 3_000,
  concurrency: 50,
  // ~10 min for the three default brokers, more for each broker beyond them.
  budgetMs: (quick ? 115 : 590) * 1000 * Math.max(1, names.length / 3),
};

export const PASSWORD = 'bench-pw-1';
export const publishers: Cred[] = Array.from({ length: P.devices }, (_, i) => ({ clientId: `p${i}`, username: `p${i}`, password: PASSWORD }));
/** Devices that connect in the connect-rate and memory phases. */
export const pool: Cred[] = Array.from({ length: P.idle }, (_, i) => ({ clientId: `d${i}`, username: `d${i}`, password: PASSWORD }));
export const subscriber = { clientId: 'sub', username: 'sub', password: PASSWORD, filter: 'devices/+/telemetry' };
/** The last devices of the pool serve the warm-up, so the first-time phases never see them. */
export const WARMUP_DEVICES = 200;
