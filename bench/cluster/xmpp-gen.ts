// XMPP load generator process for the cluster bench: bench/xmpp/loadgen.ts's pairs,
// closed-loop throughput and fixed-rate latency, with the sender and the receiver of
// each pair logged in on nodes of their own (bench/xmpp/loadgen.ts logs both into one
// server). Several named sets of pairs stay logged in at once ('same': both on node
// A, 'cross': A → B), so that phases can alternate between them without logins in
// between. The client is bench/xmpp/client.ts; sender and receiver share this
// process's clock, so latency needs no clock sync.
import { serve } from '../common/ipc.js';
import { closedLoop, login, openLoop, type Pair, type Target } from '../xmpp/client.js';
const sets = new Map<string, Pair[]>();

async function pairs(r: { set: string; from: Target; to: Target; pairs: Array<[string, string]>; password: string }): Promise<null> {
  const one = (target: Target, user: string) => login(target, { user, password: r.password, resource: 'bench' }, { presence: true });
  const list = await Promise.all(r.pairs.map(async ([a, b]) => {
    const [sender, receiver] = await Promise.all([one(r.from, a), one(r.to, b)]);
    sender.attach(() => {}); // the sender gets nothing but presence
    receiver.attach(() => {});
    return { sender, receiver, to: receiver.jid };
  }));
  sets.set(r.set, list);
  return null;
}

function setOf(name: string): Pair[] {
  const s = sets.get(name);
  if (!s) throw new Error(`no pairs '${name}'`);
  return s;
}

/** bench/xmpp/loadgen.ts' closed loop on one named set of pairs. */
async function throughput(r: { set: string; startAt: number; from: number; to: number; window: number }) {
  const list = setOf(r.set);
  const { delivered, sent, inFlight } = await closedLoop(list, r, 10_000);
  for (const p of list) p.receiver.attach(() => {});
  return { delivered, sent, lost: inFlight, seconds: (r.to - r.from) / 1000 };
}

/** bench/xmpp/loadgen.ts' open loop: `rate` messages/s on a clock, round robin; latency of each sent in [from, to). */
async function latency(r: { set: string; startAt: number; from: number; to: number; rate: number }) {
  const list = setOf(r.set);
  const result = await openLoop(list, r, 3_000);
  for (const p of list) p.receiver.attach(() => {});
  return { ...result, seconds: (r.to - r.from) / 1000 };
}

async function closePairs(): Promise<null> {
  const all = [...sets.values()].flat();
  sets.clear();
  await Promise.all(all.flatMap((p) => [p.sender.close(), p.receiver.close()]));
  return null;
}

serve({ pairs, throughput, latency, closePairs });
