// Load generator process. run.ts forks one or more of these and drives them
// over IPC: each request is {id, op, ...args}, each answer {id, result} or
// {id, error}. State (idle connections, logged-in pairs) lives here between
// requests so that the orchestrator stays light.
//
// Separate processes rather than worker_threads: Node 20 does not apply the
// tsx loader inside workers, and processes also keep each generator's file
// descriptors and garbage collector apart.
import { performance } from 'node:perf_hooks';
import { pool } from '../common/timing.js';
import { closedLoop, login, openLoop, registerAccounts, type Pair, type Session, type Target } from './client.js';

export type Request =
  | { op: 'register'; target: Target; users: string[]; password: string; concurrency: number }
  | { op: 'logins'; target: Target; users: string[]; password: string; concurrency: number; durationMs: number }
  | { op: 'connect'; target: Target; users: string[]; password: string; concurrency: number }
  | { op: 'disconnect' }
  | { op: 'pairs'; target: Target; pairs: [string, string][]; password: string }
  | { op: 'throughput'; startAt: number; from: number; to: number; window: number }
  | { op: 'latency'; startAt: number; from: number; to: number; rate: number }
  | { op: 'closePairs' };

export interface LoginResult { count: number; errors: number; seconds: number; firstError?: string }
export interface ThroughputResult { delivered: number; sent: number; seconds: number }
export interface LatencyResult { latenciesMs: number[]; sent: number; lost: number }

const resource = () => `b${Math.random().toString(36).slice(2, 8)}`;

/**
 * Logs in and out in a loop until the deadline, `concurrency` at a time.
 * No new login starts after the deadline, but those under way are finished
 * and counted, and the rate uses the time the last one ended: cutting them
 * off would understate the rate by up to `concurrency` logins.
 */
async function logins(r: Extract<Request, { op: 'logins' }>): Promise<LoginResult> {
  const start = performance.now();
  const deadline = Date.now() + r.durationMs;
  let next = 0;
  let count = 0;
  let errors = 0;
  let firstError: string | undefined;
  let last = start;
  const lanes = Array.from({ length: r.concurrency }, async () => {
    while (Date.now() < deadline) {
      const user = r.users[next++ % r.users.length]!;
      try {
        const s = await login(r.target, { user, password: r.password, resource: resource() }, { presence: false });
        count++;
        last = performance.now();
        void s.close(); // logout runs concurrently with the next login, as it would in production
      } catch (e) {
        errors++;
        firstError ??= String(e);
      }
    }
  });
  await Promise.all(lanes);
  return { count, errors, seconds: (last - start) / 1000, firstError };
}

let idle: Session[] = [];

async function connect(r: Extract<Request, { op: 'connect' }>): Promise<LoginResult> {
  const start = performance.now();
  let errors = 0;
  let firstError: string | undefined;
  await pool(r.users, r.concurrency, async (user) => {
    try {
      // Initial presence: an idle device is "online", not merely authenticated.
      idle.push(await login(r.target, { user, password: r.password, resource: 'idle' }, { presence: true }));
    } catch (e) {
      errors++;
      firstError ??= String(e);
    }
  });
  // Drain whatever the servers send after login (presence echoes, etc.) so
  // unread data does not pile up in socket buffers.
  for (const s of idle) s.attach(() => {});
  return { count: idle.length, errors, seconds: (performance.now() - start) / 1000, firstError };
}

async function disconnect(): Promise<void> {
  const all = idle;
  idle = [];
  await Promise.all(all.map((s) => s.close()));
}

let pairs: Pair[] = [];

async function loginPairs(r: Extract<Request, { op: 'pairs' }>): Promise<void> {
  const one = (user: string) => login(r.target, { user, password: r.password, resource: 'bench' }, { presence: true });
  pairs = await Promise.all(r.pairs.map(async ([a, b]) => {
    const [sender, receiver] = await Promise.all([one(a), one(b)]);
    sender.attach(() => {}); // the sender gets nothing but presence echoes
    return { sender, receiver, to: receiver.jid };
  }));
}

/**
 * Closed-loop maximum throughput: each pair keeps `window` messages in
 * flight and sends one more for each one delivered, so the servers run flat
 * out without unbounded queueing. Refills are batched per received chunk,
 * which keeps the generator's syscalls per stanza low.
 */
async function throughput(r: Extract<Request, { op: 'throughput' }>): Promise<ThroughputResult> {
  const { delivered, sent } = await closedLoop(pairs, r, 5_000);
  return { delivered, sent, seconds: (r.to - r.from) / 1000 };
}

/** Open-loop fixed rate (bench/xmpp/client.ts openLoop). */
async function latency(r: Extract<Request, { op: 'latency' }>): Promise<LatencyResult> {
  return openLoop(pairs, r, 2_000);
}

async function closePairs(): Promise<void> {
  const all = pairs;
  pairs = [];
  await Promise.all(all.flatMap((p) => [p.sender.close(), p.receiver.close()]));
}

async function handle(r: Request): Promise<unknown> {
  switch (r.op) {
    case 'register': {
      // Split the list into one contiguous slice per stream.
      const size = Math.ceil(r.users.length / r.concurrency);
      const slices = Array.from({ length: r.concurrency }, (_, i) => r.users.slice(i * size, (i + 1) * size));
      await Promise.all(slices.filter((s) => s.length > 0).map((s) => registerAccounts(r.target, s, r.password)));
      return null;
    }
    case 'logins': return logins(r);
    case 'connect': return connect(r);
    case 'disconnect': return disconnect();
    case 'pairs': return loginPairs(r);
    case 'throughput': return throughput(r);
    case 'latency': return latency(r);
    case 'closePairs': return closePairs();
  }
}

process.on('message', (msg: { id: number } & Request) => {
  handle(msg).then(
    (result) => process.send!({ id: msg.id, result }),
    (e: unknown) => process.send!({ id: msg.id, error: e instanceof Error ? e.message : String(e) }),
  );
});
// The orchestrator going away (even by SIGKILL) closes the IPC channel: exit then.
process.on('disconnect', () => process.exit(0));
