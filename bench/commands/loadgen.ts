// Commands load generator process, driven over IPC by run.ts. One process
// plays the devices, another the service, so that neither's work delays the
// other's reads.
//
// Devices: MQTT thermostats subscribed to devices/<id>/commands/# that
// answer every set_setpoint at once on devices/<id>/replies with
// {"id","ok":true,"result":{"setpoint":value}}. Each records its own time
// per command (from the PUBLISH being parsed to the reply being written),
// keyed by the value, which the service makes unique per command.
//
// Service, one of:
// - XMPP (Switchboard): a raw c2s session (bench/xmpp/client.ts, SASL
//   PLAIN) sending XEP-0050 `execute` with the submit form inline, which
//   Switchboard runs at once (docs/commands.md), and matching the IQ result
//   by id; string matching instead of an XML parser, as in bench/xmpp.
// - MQTT (any broker): plain request/reply, publishing
//   {"id","params":{"value"}} on devices/<id>/commands/set_setpoint and
//   reading devices/+/replies: what the same round trip costs through a bare
//   broker, without XMPP, forms, validation or a pending map.
import { performance } from 'node:perf_hooks';
import { serve } from '../common/ipc.js';
import { MqttClient, topicBytes, type Endpoint } from '../common/mqtt.js';
import type { Cred } from '../common/mqtt-connects.js';
import { onClock, sleep, sleepUntil } from '../common/timing.js';
import { latencySummary } from '../common/util.js';
import { login, type Session } from '../xmpp/client.js';

/** set_setpoint's value for the k-th command: unique among the last 30 million, within 5..35. */
export const valueOf = (k: number) => (5 + (k % 30_000_000) / 1e6).toFixed(6);
/** The key both sides compute from a value. */
export const keyOf = (v: number | string) => Math.round(Number(v) * 1e6);

// ---------------------------------------------------------------- devices

let devices: MqttClient[] = [];
let deviceTimes = new Map<number, number>(); // key → µs
let recording = false;

async function startDevices(r: { target: Endpoint; creds: Cred[] }): Promise<null> {
  await stopDevices();
  devices = await Promise.all(r.creds.map(async (cred) => {
    const c = await MqttClient.connect({ ...r.target, ...cred, keepalive: 60 });
    const replies = topicBytes(`devices/${cred.clientId}/replies`);
    c.onPublish = (_topic, payload) => {
      const t0 = performance.now();
      const m = JSON.parse(payload.toString()) as { id: string; params: { value: number } };
      c.publish(replies, Buffer.from(JSON.stringify({ id: m.id, ok: true, result: { setpoint: m.params.value } })), 1);
      if (recording) deviceTimes.set(keyOf(m.params.value), (performance.now() - t0) * 1000);
    };
    await c.subscribe(`devices/${cred.clientId}/commands/#`, 1);
    return c;
  }));
  return null;
}

async function stopDevices(): Promise<null> {
  await Promise.all(devices.map((d) => d.disconnect(2_000)));
  devices = [];
  return null;
}

function record(r: { on: boolean }): null {
  recording = r.on;
  if (r.on) deviceTimes = new Map();
  return null;
}

function takeDeviceTimes(): Array<[number, number]> {
  const out = [...deviceTimes];
  deviceTimes = new Map();
  return out;
}

// ---------------------------------------------------------------- service

interface Pending { sentAt: number; key: number; onDone: (ok: boolean, rtt: number, error?: string) => void }
let pending = new Map<string, Pending>();
let sendCommand: (k: number, device: string, id: string) => void = () => { throw new Error('no service'); };
let closeService: () => Promise<void> = async () => {};
let deviceIds: string[] = [];

function settle(id: string, ok: boolean, error?: string): void {
  const p = pending.get(id);
  if (!p) return;
  pending.delete(id);
  p.onDone(ok, performance.now() - p.sentAt, error);
}

/** Splits the c2s stream into top-level <iq> elements and settles each by id. */
class IqScanner {
  private buf = '';
  push(chunk: string): void {
    let text = this.buf + chunk;
    let pos = 0;
    for (;;) {
      const i = text.indexOf('<iq', pos);
      if (i < 0) { pos = Math.max(pos, text.length - 3); break; }
      const j = text.indexOf('>', i);
      if (j < 0) { pos = i; break; }
      let end: number;
      if (text[j - 1] === '/') end = j + 1;
      else {
        const k = text.indexOf('</iq>', j);
        if (k < 0) { pos = i; break; }
        end = k + 5;
      }
      const head = text.slice(i, j);
      const id = /\sid=(?:'([^']*)'|"([^"]*)")/.exec(head);
      const key = id ? (id[1] ?? id[2])! : '';
      if (/\stype=['"]result['"]/.test(head)) {
        const body = text.slice(j, end);
        if (/status=['"]completed['"]/.test(body)) settle(key, true);
        else settle(key, false, `not completed: ${body.slice(0, 200)}`);
      } else if (/\stype=['"]error['"]/.test(head)) {
        const cond = /<error[^>]*>\s*<([a-z-]+)/.exec(text.slice(j, end));
        const txt = /<text[^>]*>([^<]*)<\/text>/.exec(text.slice(j, end));
        settle(key, false, `${cond?.[1] ?? 'error'}${txt ? `: ${txt[1]}` : ''}`);
      }
      pos = end;
    }
    this.buf = text.slice(pos);
    text = '';
  }
}

const FORM = 'urn:xmpp:switchboard:command:thermostat:set_setpoint';

async function xmppService(r: { target: { host: string; port: number; domain: string }; user: string; password: string; devices: string[] }): Promise<null> {
  await closeService();
  const s: Session = await login(r.target, { user: r.user, password: r.password, resource: 'bench' }, { presence: false });
  const scanner = new IqScanner();
  s.attach((chunk) => scanner.push(chunk));
  deviceIds = r.devices;
  const domain = r.target.domain;
  sendCommand = (k, device, id) => {
    s.write(`<iq type='set' to='${device}@${domain}' id='${id}'><command xmlns='http://jabber.org/protocol/commands' ` +
      `node='set_setpoint' action='execute'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>` +
      `<value>${FORM}</value></field><field var='value'><value>${valueOf(k)}</value></field></x></command></iq>`);
  };
  closeService = async () => { await s.close(2_000); };
  return null;
}

async function mqttService(r: { target: Endpoint; cred: Cred; devices: string[] }): Promise<null> {
  await closeService();
  const c = await MqttClient.connect({ ...r.target, ...r.cred, keepalive: 60 });
  c.onPublish = (_topic, payload) => {
    const m = JSON.parse(payload.toString()) as { id: string; ok: boolean };
    settle(m.id, m.ok === true);
  };
  await c.subscribe('devices/+/replies', 1);
  deviceIds = r.devices;
  const topics = new Map(r.devices.map((d) => [d, topicBytes(`devices/${d}/commands/set_setpoint`)]));
  sendCommand = (k, device, id) => {
    c.publish(topics.get(device)!, Buffer.from(`{"id":"${id}","params":{"value":${valueOf(k)}}}`), 1);
  };
  closeService = async () => { await c.disconnect(2_000); };
  return null;
}

async function stopService(): Promise<null> {
  await closeService();
  closeService = async () => {};
  pending = new Map();
  return null;
}

let k = 0;

/** Sends command number k to the next device; returns its key. */
function issue(onDone: Pending['onDone']): void {
  const n = k++;
  const id = `c${n}`;
  pending.set(id, { sentAt: performance.now(), key: keyOf(valueOf(n)), onDone });
  sendCommand(n, deviceIds[n % deviceIds.length]!, id);
}

/** Keeps `inflight` commands outstanding; completions in [from, to) are counted. */
async function closedLoop(r: { inflight: number; startAt: number; from: number; to: number }) {
  const fromP = r.from - performance.timeOrigin, toP = r.to - performance.timeOrigin;
  let completed = 0, errors = 0, running = true;
  let firstError: string | undefined;
  const rtt: number[] = [];
  const onDone: Pending['onDone'] = (ok, ms, error) => {
    const t = performance.now();
    if (t >= fromP && t < toP) {
      if (ok) { completed++; rtt.push(ms); } else { errors++; firstError ??= error; }
    } else if (!ok) { errors++; firstError ??= error; }
    if (running) issue(onDone);
  };
  await sleepUntil(r.startAt);
  for (let i = 0; i < r.inflight; i++) issue(onDone);
  await sleepUntil(r.to);
  running = false;
  const end = Date.now() + 12_000;
  while (pending.size > 0 && Date.now() < end) await sleep(20);
  const lost = pending.size;
  pending = new Map();
  return { completed, errors, lost, firstError, seconds: (r.to - r.from) / 1000, rtt: latencySummary(rtt) };
}

/** A fixed rate on a clock; per command sent in [from, to): its key and round trip. */
async function openLoop(r: { rate: number; startAt: number; from: number; to: number }) {
  let errors = 0, inWindow = 0;
  let firstError: string | undefined;
  const rtts: Array<[number, number]> = [];
  await sleepUntil(r.startAt);
  await onClock(r.rate, r.to, (now) => {
    const counted = now >= r.from;
    if (counted) inWindow++;
    const key = keyOf(valueOf(k));
    issue((ok, ms, error) => {
      if (!ok) { errors++; firstError ??= error; } else if (counted) rtts.push([key, ms]);
    });
  });
  const end = Date.now() + 12_000;
  while (pending.size > 0 && Date.now() < end) await sleep(20);
  const lost = pending.size;
  pending = new Map();
  return { sent: inWindow, errors, lost, firstError, seconds: (r.to - r.from) / 1000, rtts };
}

serve({ startDevices, stopDevices, record, takeDeviceTimes, xmppService, mqttService, stopService, closedLoop, openLoop });
