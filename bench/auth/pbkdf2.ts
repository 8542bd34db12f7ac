// What one password check's PBKDF2 costs here (RFC 8018 §5.2 through node:crypto,
// i.e. OpenSSL), at the SCRAM iteration count: one at a time on one thread, and two
// at once on two threads (do the two cores slow each other down?).
//   node --import tsx bench/auth/pbkdf2.ts [--iterations 4096] [--count 1000]
import { pbkdf2Sync } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';

const { values: args } = parseArgs({ options: { iterations: { type: 'string', default: '4096' }, count: { type: 'string', default: '1000' } } });
const iterations = Number(args.iterations);
const count = Number(args.count);

/** µs per PBKDF2 over `count` runs, on this thread. */
function timeRuns(digest: string, iterations: number, count: number): number {
  const salt = Buffer.from('0123456789abcdef');
  const t0 = performance.now();
  for (let i = 0; i < count; i++) pbkdf2Sync(`password-${i}`, salt, iterations, digest === 'sha1' ? 20 : 32, digest);
  return ((performance.now() - t0) * 1000) / count;
}

const THREAD = `
const { parentPort, workerData: w } = require('node:worker_threads');
const { pbkdf2Sync } = require('node:crypto');
const salt = Buffer.from('0123456789abcdef');
const t0 = performance.now();
for (let i = 0; i < w.count; i++) pbkdf2Sync('password-' + i, salt, w.iterations, 32, 'sha256');
parentPort.postMessage(((performance.now() - t0) * 1000) / w.count);
`;

for (const digest of ['sha1', 'sha256']) console.log(`${digest}, one at a time: ${timeRuns(digest, iterations, count).toFixed(0)} µs per PBKDF2 (${iterations} iterations)`);
const both = await Promise.all([0, 1].map(() => new Promise<number>((resolve, reject) => {
  const w = new Worker(THREAD, { eval: true, workerData: { iterations, count } });
  w.once('message', resolve);
  w.once('error', reject);
})));
console.log(`sha256, two threads at once: ${both.map((us) => us.toFixed(0)).join(' and ')} µs per PBKDF2`);
