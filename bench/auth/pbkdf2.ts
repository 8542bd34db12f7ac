// What one password check's PBKDF2 costs here (RFC 8018 §5.2) at the SCRAM iteration
// count: through node:crypto (OpenSSL 3) and through the broker's native PBKDF2
// (src/auth/native/pbkdf2.c, SHA-256); one at a time on one thread, and two at once
// on two threads (do the two cores slow each other down?).
//   node --import tsx bench/auth/pbkdf2.ts [--iterations 4096] [--count 1000]
import { pbkdf2Sync } from 'node:crypto';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { NATIVE_PBKDF2 } from '../../src/auth/hash-pool.js';

const { values: args } = parseArgs({ options: { iterations: { type: 'string', default: '4096' }, count: { type: 'string', default: '1000' } } });
const iterations = Number(args.iterations);
const count = Number(args.count);

if (!NATIVE_PBKDF2) throw new Error('the native PBKDF2 is not built: npm run build:native');
const { pbkdf2Sha256 } = createRequire(import.meta.url)(NATIVE_PBKDF2) as { pbkdf2Sha256: (p: Buffer, s: Buffer, i: number, n: number) => Buffer };
const salt = Buffer.from('0123456789abcdef');
const impls: Record<string, (i: number) => Buffer> = {
  'openssl sha1': (i) => pbkdf2Sync(`password-${i}`, salt, iterations, 20, 'sha1'),
  'openssl sha256': (i) => pbkdf2Sync(`password-${i}`, salt, iterations, 32, 'sha256'),
  'native sha256': (i) => pbkdf2Sha256(Buffer.from(`password-${i}`), salt, iterations, 32),
};

/** µs per PBKDF2 over `count` runs, on this thread. */
function timeRuns(run: (i: number) => Buffer): number {
  const t0 = performance.now();
  for (let i = 0; i < count; i++) run(i);
  return ((performance.now() - t0) * 1000) / count;
}

const THREAD = `
const { parentPort, workerData: w } = require('node:worker_threads');
const { pbkdf2Sync } = require('node:crypto');
const native = w.native ? require(w.addon).pbkdf2Sha256 : null;
const salt = Buffer.from('0123456789abcdef');
const t0 = performance.now();
for (let i = 0; i < w.count; i++) native ? native(Buffer.from('password-' + i), salt, w.iterations, 32) : pbkdf2Sync('password-' + i, salt, w.iterations, 32, 'sha256');
parentPort.postMessage(((performance.now() - t0) * 1000) / w.count);
`;

for (const [name, run] of Object.entries(impls)) console.log(`${name}, one at a time: ${timeRuns(run).toFixed(0)} µs per PBKDF2 (${iterations} iterations)`);
for (const native of [false, true]) {
  const both = await Promise.all([0, 1].map(() => new Promise<number>((resolve, reject) => {
    const w = new Worker(THREAD, { eval: true, workerData: { iterations, count, native, addon: NATIVE_PBKDF2 } });
    w.once('message', resolve);
    w.once('error', reject);
  })));
  console.log(`${native ? 'native' : 'openssl'} sha256, two threads at once: ${both.map((us) => us.toFixed(0)).join(' and ')} µs per PBKDF2`);
}
