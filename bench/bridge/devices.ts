// The 50 thermostats of the bridge bench, one process driven over
// IPC (bench/common/ipc.ts). The same devices publish either to Mosquitto, on
// the bridged topic layout (`plant/<id>/data`, anonymous), or straight to
// Switchboard (`devices/<id>/telemetry`, client id = user name = device id).
//
// Each sample is
//   {"temperature":21.5,"humidity":40,"ts":<epoch ms>}
// with a `ts` unique over the run (tsBase + the sample's global index), so
// that every sample is its own point in InfluxDB and `SELECT count(*)`
// counts samples. QoS 1, closed loop: each device keeps at most `window`
// samples not yet acknowledged by the broker it talks to (PUBACK), and stops
// after its share of `total`.
import { serve } from '../common/ipc.js';
import { MqttClient, topicBytes, type Endpoint } from '../common/mqtt.js';
import { nowMs, sleep } from '../common/timing.js';

export interface Device { clientId: string; username?: string; password?: string; topic: string }

export interface PublishResult {
  sent: number;
  acked: number;
  /** Epoch ms (fractional) of the first publish and of the last PUBACK. */
  firstSend: number;
  lastAck: number;
  /** Send time of each sample in send order, ms after firstSend (2 decimals). */
  sends: number[];
  timedOut: boolean;
}

interface Pub { c: MqttClient; topic: Buffer; outstanding: number; left: number }
let pubs: Pub[] = [];

async function setup(r: { target: Endpoint; devices: Device[] }): Promise<null> {
  await teardown();
  const list: Pub[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(50, r.devices.length) }, async () => {
    while (next < r.devices.length) {
      const d = r.devices[next++]!;
      const c = await MqttClient.connect({ ...r.target, clientId: d.clientId, username: d.username, password: d.password, keepalive: 60, timeoutMs: 30_000 });
      list.push({ c, topic: topicBytes(d.topic), outstanding: 0, left: 0 });
    }
  }));
  pubs = list;
  return null;
}

async function teardown(): Promise<null> {
  await Promise.all(pubs.map((p) => p.c.disconnect(2_000)));
  pubs = [];
  return null;
}

/** Publishes `total` samples over all devices; resolves at the last PUBACK (or maxMs). */
async function publish(r: { total: number; window: number; startAt: number; tsBase: number; maxMs: number }): Promise<PublishResult> {
  if (!pubs.length) throw new Error('no devices: call setup first');
  const sendAt = new Float64Array(r.total);
  pubs.forEach((p, i) => {
    p.outstanding = 0;
    p.left = Math.floor(r.total / pubs.length) + (i < r.total % pubs.length ? 1 : 0);
  });
  let sent = 0, acked = 0, lastAck = 0;
  let finish: () => void = () => {};
  const finished = new Promise<void>((resolve) => { finish = resolve; });
  const send = (p: Pub) => {
    const i = sent++;
    p.outstanding++;
    p.left--;
    sendAt[i] = nowMs();
    p.c.publish(p.topic, Buffer.from(`{"temperature":21.5,"humidity":40,"ts":${r.tsBase + i}}`), 1);
  };
  const refill = (p: Pub) => { while (p.outstanding < r.window && p.left > 0) send(p); };
  for (const p of pubs) {
    p.c.onPuback = () => {
      if (p.outstanding <= 0) return; // a late PUBACK of an earlier phase
      p.outstanding--;
      acked++;
      lastAck = nowMs();
      if (acked === r.total) finish();
      else refill(p);
    };
  }
  await sleep(Math.max(0, r.startAt - Date.now()));
  for (const p of pubs) refill(p);
  const timedOut = await Promise.race([finished.then(() => false), sleep(r.maxMs).then(() => true)]);
  for (const p of pubs) p.c.onPuback = () => {};
  const first = sendAt[0]!;
  const sends = new Array<number>(sent);
  for (let i = 0; i < sent; i++) sends[i] = Math.round((sendAt[i]! - first) * 100) / 100;
  return { sent, acked, firstSend: first, lastAck, sends, timedOut };
}

serve({ setup, teardown, publish });
