// What the PBKDF2 of a password check (RFC 8018 §5.2, SHA-256 at the SCRAM iteration
// count) costs here, as PBKDF2s per second: node:crypto's pbkdf2Sync on this thread,
// async crypto.pbkdf2 on libuv's pool (one and two in flight), and the broker's hash
// pool (src/auth/hash-pool.ts) with one and two threads; and the CPU of this process
// (all its threads) per PBKDF2, steadier than the rate on a shared machine. Each cell
// runs for --ms per round; rounds alternate over the cells (order rotated) so drift
// favours none; the median of the rounds is printed, with min–max. See
// docs/benchmarks.md, "Password hashing". Usage: --help.
import { pbkdf2, pbkdf2Sync } from 'node:crypto';
import { promisify } from 'node:util';
import { startHashPool } from '../../src/auth/hash-pool.js';
import { benchArgs } from '../common/cli.js';

const USAGE = `PBKDF2s per second at the SCRAM iteration count: pbkdf2Sync, libuv's pool, the hash pool.

  node --import tsx bench/auth/pbkdf2.ts [--iterations 4096] [--rounds 5] [--ms 1500]

  --iterations N  PBKDF2 iterations (default 4096)
  --rounds N      rounds over all cells (default 5)
  --ms N          how long each cell runs per round (default 1500)`;

const args = benchArgs(USAGE, { iterations: { type: 'string', default: '4096' }, rounds: { type: 'string', default: '5' }, ms: { type: 'string', default: '1500' } });
const iterations = Number(args.iterations);
const rounds = Number(args.rounds);
const ms = Number(args.ms);
const salt = Buffer.from('0123456789abcdef');
const pbkdf2Async = promisify(pbkdf2);

interface Cell { rate: number; cpuUs: number }

/** Runs `inFlight` loops of `one` until the cell's time is up: PBKDF2s per second, process CPU µs per PBKDF2. */
async function rate(inFlight: number, one: (i: number) => unknown): Promise<Cell> {
  await one(-1);
  const until = Date.now() + ms;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  let n = 0;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (Date.now() < until) await one(n++);
  }));
  const cpu = process.cpuUsage(cpu0);
  return { rate: (n / (performance.now() - t0)) * 1000, cpuUs: (cpu.user + cpu.system) / n };
}

async function onPool(threads: number): Promise<Cell> {
  const pool = await startHashPool({ threads, nice: 10 });
  try {
    return await rate(2 * threads, (i) => pool.pbkdf2(`password-${i}`, salt, iterations, 32, 'sha256'));
  } finally {
    await pool.close();
  }
}

const cells: Array<[string, () => Promise<Cell>]> = [
  ['pbkdf2Sync, this thread', () => rate(1, (i) => pbkdf2Sync(`password-${i}`, salt, iterations, 32, 'sha256'))],
  ['async crypto.pbkdf2, 1 in flight (libuv)', () => rate(1, (i) => pbkdf2Async(`password-${i}`, salt, iterations, 32, 'sha256'))],
  ['async crypto.pbkdf2, 2 in flight (libuv)', () => rate(2, (i) => pbkdf2Async(`password-${i}`, salt, iterations, 32, 'sha256'))],
  ['hash pool, 1 thread (pbkdf2Sync, nice 10)', () => onPool(1)],
  ['hash pool, 2 threads (pbkdf2Sync, nice 10)', () => onPool(2)],
];

const results = new Map<string, Cell[]>(cells.map(([name]) => [name, []]));
for (let r = 0; r < rounds; r++) {
  for (let i = 0; i < cells.length; i++) {
    const [name, run] = cells[(i + r) % cells.length]!;
    results.get(name)!.push(await run());
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const spread = (xs: number[], unit: string) => `${median(xs).toFixed(0).padStart(6)}${unit} (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})`;
console.log(`PBKDF2-HMAC-SHA256, ${iterations} iterations, 32-byte key: median of ${rounds} alternating rounds of ${ms} ms (min–max)`);
for (const [name, xs] of results) {
  console.log(`${name.padEnd(44)} ${spread(xs.map((x) => x.rate), '/s')}  ${spread(xs.map((x) => x.cpuUs), ' µs CPU each')}`);
}
