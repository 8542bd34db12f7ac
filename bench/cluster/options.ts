// bench/cluster's command line, its parameters, and the accounts it provisions.
import { benchArgs, list } from '../common/cli.js';
import type { Cred } from '../common/mqtt-loadgen.js';

const USAGE = `Cluster benchmark: Switchboard as one node of a cluster against standalone, and
2 and 3 nodes, on a real Redis, PostgreSQL and InfluxDB the bench starts (loopback).

  node --import tsx bench/cluster/run.ts [--quick] [--rounds N] [--c-runs N] [--idle N]
       [--parts a,b,c,memory] [--measure-ms N] [--json FILE] [--keep]

  --quick         1 round, short windows, 500 idle devices (~4 min)
  --rounds N      standalone/cluster alternations of part a (default 3)
  --c-runs N      runs per node count in part c (default 2)
  --idle N        idle MQTT devices of the memory phase (default 3,000)
  --parts LIST    any of a (cluster of one vs standalone), b (across two nodes),
                  c (CPU per sample for 1, 2, 3 nodes), memory; default all
  --measure-ms N  each measured window (default 4,000)
  --json FILE     all figures
  --keep          keep the work dir (configs, logs of every node and server)`;

export const args = benchArgs(USAGE, {
  quick: { type: 'boolean', default: false },
  rounds: { type: 'string' },
  'c-runs': { type: 'string' },
  idle: { type: 'string' },
  parts: { type: 'string', default: 'a,b,c,memory' },
  'measure-ms': { type: 'string' },
  json: { type: 'string' },
  keep: { type: 'boolean', default: false },
});

export const quick = args.quick;
export const parts = new Set(list(args.parts));
export const P = {
  rounds: Number(args.rounds ?? (quick ? 1 : 3)),
  cRuns: Number(args['c-runs'] ?? (quick ? 1 : 2)),
  warmupMs: quick ? 1_000 : 1_500,
  measureMs: Number(args['measure-ms'] ?? (quick ? 2_500 : 4_000)),
  /** XMPP: sender → receiver pairs, messages in flight per pair (bench/xmpp's). */
  pairs: 50,
  xmppWindow: 50,
  /** XMPP latency: stanzas/s on a clock. */
  xmppRate: 1_000,
  /** MQTT: publishing devices, samples in flight each (bench/mqtt's and bench/telemetry's 10). */
  publishers: 48,
  mqttWindow: 10,
  /** Commands: devices, commands in flight, rate of the latency phase (bench/commands'). */
  commandDevices: 100,
  commandsInflight: 200,
  commandRate: 1_000,
  idle: Number(args.idle ?? (quick ? 500 : 3_000)),
  budgetMs: (quick ? 6 : 14) * 60_000,
};

export const PASSWORD = 'bench-pw-1';
export const DOMAIN = 'localhost';
/** Operators: u0..u99 same-node pairs (and part a's), u100..u199 cross-node pairs. */
export const users = Array.from({ length: 4 * P.pairs }, (_, i) => `u${i}`);
export const publishers: Cred[] = Array.from({ length: P.publishers }, (_, i) => ({ clientId: `p${i}`, username: `p${i}`, password: PASSWORD }));
/** The service: MQTT subscriber of part a (client id `sub`), XEP-0050 commander of part b. */
export const SERVICE = 'svc';
export const subscriber = { clientId: 'sub', username: SERVICE, password: PASSWORD, filter: 'devices/+/telemetry' };
export const commandDevices: Cred[] = Array.from({ length: P.commandDevices }, (_, i) => ({ clientId: `t${i}`, username: `t${i}`, password: PASSWORD }));
export const idleDevices: Cred[] = Array.from({ length: P.idle }, (_, i) => ({ clientId: `i${i}`, username: `i${i}`, password: PASSWORD }));

export const accounts = {
  devices: [...publishers, ...commandDevices, ...idleDevices].map((d) => ({ id: d.clientId, password: PASSWORD })),
  accounts: [
    ...users.map((name) => ({ name, role: 'operator' as const, password: PASSWORD })),
    { name: SERVICE, role: 'service' as const, password: PASSWORD },
  ],
};
