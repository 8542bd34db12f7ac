// MQTT load generator process (bench/mqtt and bench/telemetry fork it and
// drive it over IPC, see ipc.ts). It holds the publishing devices, the one
// subscriber, idle devices and the connect loop (mqtt-connects.ts), and
// measures latency itself: the publisher and the subscriber share this
// process's clock, and each sample carries its send time (samples.ts).
import { performance } from 'node:perf_hooks';
import { serve } from './ipc.js';
import { MqttClient, encodePublish, topicBytes, type Endpoint } from './mqtt.js';
import { connectLoad, type Cred } from './mqtt-connects.js';
import { Samples, sample, sentAt } from './samples.js';
import { nowMs, onClock, pool, sleep, sleepUntil } from './timing.js';
import { latencySummary } from './util.js';

export type { ConnectResult, Cred } from './mqtt-connects.js';

export interface ClosedResult {
  sent: number; acked: number; delivered: number; seconds: number;
  latency: ReturnType<typeof latencySummary>; lost: number; stalls: number;
  /** Messages sent per millisecond since startAt (for publish-to-landed in bench/telemetry). */
  sendsPerMs?: number[];
}
export interface RateResult { sent: number; received: number; lost: number; seconds: number; latency: ReturnType<typeof latencySummary> }
export interface CollectResult { delivered: number; received: number; seconds: number; latency: ReturnType<typeof latencySummary>; drainMs: number }

// ---------------------------------------------------------------- state

interface Pub { c: MqttClient; topic: Buffer; outstanding: number }
let target: Endpoint = { host: '127.0.0.1', port: 0 };
let pubs: Pub[] = [];
const pubByTopic = new Map<string, Pub>();
let sub: MqttClient | null = null;
/** What the subscriber does with each message in the current phase. */
let onDelivery: (pub: Pub | undefined, payload: Buffer) => void = () => {};

async function setup(r: { target: Endpoint; publishers: Cred[]; subscriber?: Cred & { filter: string; qos: 0 | 1 } }): Promise<null> {
  target = r.target;
  await teardown();
  const list: Pub[] = [];
  await pool(r.publishers, 50, async (cred) => {
    const c = await MqttClient.connect({ ...target, ...cred, keepalive: 60 });
    const topic = `devices/${cred.clientId}/telemetry`;
    const p: Pub = { c, topic: topicBytes(topic), outstanding: 0 };
    list.push(p);
    pubByTopic.set(topic, p);
  });
  pubs = list;
  if (r.subscriber) {
    sub = await MqttClient.connect({ ...target, ...r.subscriber, keepalive: 60 });
    sub.onPublish = (topic, payload) => onDelivery(pubByTopic.get(topic), payload);
    await sub.subscribe(r.subscriber.filter, r.subscriber.qos);
  }
  return null;
}

async function teardown(): Promise<null> {
  await Promise.all([...pubs.map((p) => p.c.disconnect(2_000)), sub?.disconnect(2_000)]);
  pubs = [];
  pubByTopic.clear();
  sub = null;
  onDelivery = () => {};
  return null;
}

/**
 * Closed loop. With a subscriber, each publisher keeps at most `window`
 * messages that the subscriber has not yet received (end to end: no broker
 * can queue more than 50 × window for the subscriber, so none drops any).
 * Without one (bench/telemetry), at most `window` not yet acknowledged by
 * PUBACK. Counts what is delivered (or acknowledged) in [from, to).
 */
async function closed(r: { qos: 0 | 1; window: number; startAt: number; from: number; to: number; recordSends?: boolean }): Promise<ClosedResult> {
  const e2e = sub !== null;
  const fromP = r.from - performance.timeOrigin;
  const toP = r.to - performance.timeOrigin;
  let sent = 0, acked = 0, delivered = 0, lastDelivery = performance.now(), stalls = 0;
  const lat = new Samples();
  const sends: number[] = [];
  let running = false;
  const send = (p: Pub) => {
    p.outstanding++;
    sent++;
    p.c.publish(p.topic, sample(), r.qos);
    if (r.recordSends) {
      const ms = Math.floor(Date.now() - r.startAt);
      while (sends.length <= ms) sends.push(0);
      sends[ms]!++;
    }
  };
  const refill = (p: Pub) => { while (running && p.outstanding < r.window) send(p); };
  if (e2e) {
    onDelivery = (p, payload) => {
      const t = performance.now();
      lastDelivery = t;
      if (t >= fromP && t < toP) { delivered++; lat.push(nowMs() - sentAt(payload)); }
      if (p) { p.outstanding--; refill(p); }
    };
  }
  for (const p of pubs) {
    p.outstanding = 0;
    p.c.onPuback = () => {
      const t = performance.now();
      if (t >= fromP && t < toP) acked++;
      if (!e2e) { p.outstanding--; refill(p); }
    };
  }
  await sleepUntil(r.startAt);
  running = true;
  for (const p of pubs) refill(p);
  // A message lost on the way would shrink a window for good: watch for stalls.
  while (Date.now() < r.to) {
    await sleep(250);
    if (e2e && performance.now() - lastDelivery > 3_000) {
      stalls++;
      for (const p of pubs) { p.outstanding = 0; refill(p); }
    }
  }
  running = false;
  // Let what is in flight arrive (not counted), so the next phase starts clean.
  const end = Date.now() + 10_000;
  while (Date.now() < end && pubs.some((p) => p.outstanding > 0)) await sleep(20);
  const lost = pubs.reduce((a, p) => a + Math.max(0, p.outstanding), 0);
  for (const p of pubs) p.c.onPuback = () => {};
  onDelivery = () => {};
  return {
    sent, acked, delivered, seconds: (r.to - r.from) / 1000, latency: latencySummary(lat.view()), lost, stalls,
    sendsPerMs: r.recordSends ? sends : undefined,
  };
}

/**
 * Open loop at a fixed offered rate, on a clock regardless of what arrives,
 * round robin over the publishers. Latency of each message sent in
 * [from, to); lost = sent in the window and not received 1 s after it.
 */
async function rate(r: { qos: 0 | 1; rate: number; startAt: number; from: number; to: number }): Promise<RateResult> {
  const fromE = r.from, toE = r.to;
  let received = 0, inWindow = 0, next = 0;
  const lat = new Samples();
  onDelivery = (_p, payload) => {
    const s = sentAt(payload);
    if (s >= fromE && s < toE) { received++; lat.push(nowMs() - s); }
  };
  for (const p of pubs) p.c.onPuback = () => {};
  await sleepUntil(r.startAt);
  await onClock(r.rate, r.to, () => {
    const p = pubs[next++ % pubs.length]!;
    // In the window by the send time the sample carries, as the receiving side
    // judges it: the tick's Date.now() is another clock, a few ms off at the
    // window's edges.
    const t = nowMs();
    p.c.publish(p.topic, sample(t), r.qos);
    if (t >= fromE && t < toE) inWindow++;
  });
  await sleep(1_000);
  onDelivery = () => {};
  return { sent: inWindow, received, lost: Math.max(0, inWindow - received), seconds: (r.to - r.from) / 1000, latency: latencySummary(lat.view()) };
}

/**
 * QoS 0, open loop with no clock: every publisher writes as fast as its
 * socket takes it (it waits only for 'drain'), as a device fleet
 * reconnecting after an outage would. The subscriber lives in another
 * generator process (collect), so that the publishers' pumping does not
 * delay its reads. Returns how many were sent.
 */
async function blast(r: { startAt: number; to: number }): Promise<{ sent: number }> {
  let sent = 0;
  await sleepUntil(r.startAt);
  const BATCH = 20;
  let over = false;
  // A publisher waiting for 'drain' from a broker that stopped reading must not hold up the end.
  const stop = new Promise<void>((resolve) => setTimeout(() => { over = true; resolve(); }, Math.max(0, r.to - Date.now())));
  await Promise.race([stop, Promise.all(pubs.map((p) => new Promise<void>((resolve) => {
    const pump = () => {
      if (over || Date.now() >= r.to || p.c.closed) return resolve();
      const parts: Buffer[] = [];
      for (let i = 0; i < BATCH; i++) parts.push(encodePublish(p.topic, sample(), 0));
      sent += BATCH;
      if (p.c.write(Buffer.concat(parts))) setImmediate(pump);
      else p.c.socket.once('drain', pump);
    };
    pump();
  })))]);
  over = true;
  return { sent };
}

/** A subscriber of its own in this process, for collect(). */
async function subscribe(r: Cred & { target: Endpoint; filter: string; qos: 0 | 1 }): Promise<null> {
  await sub?.disconnect(2_000);
  sub = await MqttClient.connect({ ...r.target, ...r, keepalive: 60 });
  sub.onPublish = (_topic, payload) => onDelivery(undefined, payload);
  await sub.subscribe(r.filter, r.qos);
  return null;
}

/**
 * Counts what the subscriber receives in [from, to) and its latency (the
 * send time rides in the sample; both processes read the same system
 * clock), then waits until nothing arrived for 500 ms (or drainMaxMs after
 * `to`): drainMs says how long delivery went on after the publishers
 * stopped, i.e. how much the broker had queued.
 */
async function collect(r: { from: number; to: number; drainMaxMs: number }): Promise<CollectResult> {
  const fromP = r.from - performance.timeOrigin;
  const toP = r.to - performance.timeOrigin;
  let delivered = 0, received = 0, lastRx = 0;
  const lat = new Samples();
  onDelivery = (_p, payload) => {
    const t = performance.now();
    lastRx = t;
    received++;
    if (t >= fromP && t < toP) { delivered++; lat.push(nowMs() - sentAt(payload)); }
  };
  await sleepUntil(r.to);
  const stopped = performance.now();
  while (performance.now() - stopped < r.drainMaxMs && performance.now() - Math.max(lastRx, stopped) < 500) await sleep(50);
  onDelivery = () => {};
  return { delivered, received, seconds: (r.to - r.from) / 1000, latency: latencySummary(lat.view()), drainMs: Math.max(0, lastRx - stopped) };
}

const { connects, connectIdle, dropIdle } = connectLoad(() => target);

async function setTarget(r: { target: Endpoint }): Promise<null> {
  target = r.target;
  return null;
}

serve({ setup, teardown, closed, rate, blast, subscribe, collect, connects, connectIdle, dropIdle, setTarget });
