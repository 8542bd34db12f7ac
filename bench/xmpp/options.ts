// bench/xmpp's command line, and the parameters and accounts it derives from it.
import { benchArgs, list } from '../common/cli.js';

const USAGE = `XMPP benchmark: Prosody, ejabberd and Switchboard side by side on loopback.

  node --import tsx bench/xmpp/run.ts [--quick] [--servers prosody,ejabberd,switchboard]
       [--runs N] [--mem-runs N] [--procs N] [--window N] [--json FILE] [--keep]

  --quick       1 short run with 200/1,000 idle connections (~2 min)
  --servers     any subset, in that order ('switchboard@DIR': another built checkout, for an A/B)
  --runs N      runs per server (default 3; 1 with --quick)
  --mem-runs N  runs that also measure memory (default 1)
  --procs N     load generator processes (default 1)
  --window N    messages in flight per pair (default 50)
  --json FILE   all per-run figures
  --keep        keep the work dir (configs, logs; kept anyway when something failed)`;

export const args = benchArgs(USAGE, {
  quick: { type: 'boolean', default: false },
  servers: { type: 'string', default: 'prosody,ejabberd,switchboard' },
  runs: { type: 'string' },
  'mem-runs': { type: 'string', default: '1' },
  procs: { type: 'string', default: '1' },
  window: { type: 'string', default: '50' },
  json: { type: 'string' },
  keep: { type: 'boolean', default: false },
});

export const names = list(args.servers);
const quick = args.quick;
export const P = {
  runs: Number(args.runs ?? (quick ? 1 : 3)),
  // Memory needs 10,000 logins, each a PBKDF2 at Prosody's and ejabberd's cost:
  // too long to repeat in every run, and RSS per connection varies little between
  // runs, so by default only the first run measures it.
  memRuns: Number(args['mem-runs']),
  procs: Math.max(1, Number(args.procs)),
  pairs: 50,
  window: Number(args.window), // messages in flight per pair in the throughput test
  idleLevels: quick ? [200, 1_000] : [2_000, 10_000],
  loginConcurrency: 50,
  loginMs: quick ? 2_000 : 3_000,
  warmupMs: quick ? 1_000 : 2_000,
  measureMs: quick ? 3_000 : 6_000,
  rate: 2_000,
};
export const PASSWORD = 'pw';
export const DOMAIN = 'localhost';
export const maxIdle = Math.max(...P.idleLevels);
export const idleUsers = Array.from({ length: maxIdle }, (_, i) => `u${i}`);
export const pairUsers = Array.from({ length: 2 * P.pairs }, (_, i) => `u${maxIdle + i}`);
export const allUsers = [...idleUsers, ...pairUsers];
