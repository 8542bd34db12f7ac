// A deliberately minimal MQTT 3.1.1 client for load generation.
//
// CONNECT (client id, user name, password, keepalive), PUBLISH at QoS 0 and 1,
// PUBACK, SUBSCRIBE, PINGREQ, DISCONNECT, and a packet splitter for what the
// broker sends back. No reconnects, no session state, no QoS 2. On a 2-core
// machine every cycle the load generator burns is taken from the broker under
// test, so this costs a fraction of what mqtt.js does per message (the same
// reasoning as bench/xmpp/client.ts).
import net from 'node:net';

export interface Endpoint { host: string; port: number }
export interface ConnectOptions extends Endpoint {
  clientId: string;
  username?: string;
  password?: string;
  /** Seconds; 0 turns keepalive off. */
  keepalive?: number;
  timeoutMs?: number;
}

export class MqttError extends Error {}

/** MQTT 3.1.1 §2.2.3 Remaining Length: 7 bits per byte, high bit set on all but the last (also used by test/helpers). */
export function lengthBytes(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

function str(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  const out = Buffer.allocUnsafe(2 + b.length);
  out.writeUInt16BE(b.length, 0);
  b.copy(out, 2);
  return out;
}

export function encodeConnect(o: ConnectOptions): Buffer {
  let flags = 0x02; // clean session
  const payload = [str(o.clientId)];
  if (o.username !== undefined) { flags |= 0x80; payload.push(str(o.username)); }
  if (o.password !== undefined) { flags |= 0x40; payload.push(str(o.password)); }
  const ka = o.keepalive ?? 60;
  const variable = Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, flags, ka >> 8, ka & 0xff]);
  const body = Buffer.concat([variable, ...payload]);
  return Buffer.concat([Buffer.from([0x10, ...lengthBytes(body.length)]), body]);
}

/** A topic as it goes on the wire (length-prefixed), to encode it only once per device. */
export function topicBytes(topic: string): Buffer {
  return str(topic);
}

/** PUBLISH; `topic` from topicBytes(). QoS 1 needs a packet id 1..65535. */
export function encodePublish(topic: Buffer, payload: Buffer, qos: 0 | 1, id = 0): Buffer {
  const rem = topic.length + (qos ? 2 : 0) + payload.length;
  const lb = lengthBytes(rem);
  const out = Buffer.allocUnsafe(1 + lb.length + rem);
  let p = 0;
  out[p++] = 0x30 | (qos << 1);
  for (const b of lb) out[p++] = b;
  p += topic.copy(out, p);
  if (qos) { out.writeUInt16BE(id, p); p += 2; }
  payload.copy(out, p);
  return out;
}

export function encodePuback(id: number): Buffer {
  return Buffer.from([0x40, 2, id >> 8, id & 0xff]);
}

export function encodeSubscribe(id: number, filter: string, qos: 0 | 1): Buffer {
  const body = Buffer.concat([Buffer.from([id >> 8, id & 0xff]), str(filter), Buffer.from([qos])]);
  return Buffer.concat([Buffer.from([0x82, ...lengthBytes(body.length)]), body]);
}

export const DISCONNECT = Buffer.from([0xe0, 0]);
export const PINGREQ = Buffer.from([0xc0, 0]);

/**
 * Calls onPacket(header, data, start, end) for each complete packet in the
 * stream; returns the unconsumed tail (or null).
 */
export function splitPackets(tail: Buffer | null, chunk: Buffer,
  onPacket: (header: number, data: Buffer, start: number, end: number) => void): Buffer | null {
  const data = tail ? Buffer.concat([tail, chunk]) : chunk;
  let pos = 0;
  for (;;) {
    if (pos + 2 > data.length) break;
    let len = 0;
    let mul = 1;
    let i = pos + 1;
    let complete = false;
    for (let n = 0; n < 4 && i < data.length; n++) {
      const b = data[i++]!;
      len += (b & 0x7f) * mul;
      mul *= 128;
      if (!(b & 0x80)) { complete = true; break; }
    }
    if (!complete || i + len > data.length) break;
    onPacket(data[pos]!, data, i, i + len);
    pos = i + len;
  }
  // Copy a small tail so that a large chunk is not kept alive by it.
  return pos >= data.length ? null : Buffer.from(data.subarray(pos));
}

/** One connection, after a successful CONNACK. */
export class MqttClient {
  /** Incoming PUBLISH; QoS 1 ones are acknowledged automatically. */
  onPublish: (topic: string, payload: Buffer, qos: number) => void = () => {};
  onPuback: (id: number) => void = () => {};
  onClose: () => void = () => {};
  closed = false;
  private tail: Buffer | null = null;
  private nextId = 1;
  private acks: Buffer[] = [];
  private subWaiters = new Map<number, (codes: number[]) => void>();
  private connackWaiter: ((rc: number) => void) | undefined;
  private pinger: NodeJS.Timeout | undefined;

  private constructor(readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.tail = splitPackets(this.tail, chunk, (h, d, s, e) => this.packet(h, d, s, e));
      if (this.acks.length) {
        socket.write(this.acks.length === 1 ? this.acks[0]! : Buffer.concat(this.acks));
        this.acks = [];
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      if (this.pinger) clearInterval(this.pinger);
      this.connackWaiter?.(-1);
      for (const w of this.subWaiters.values()) w([]);
      this.subWaiters.clear();
      this.onClose();
    });
  }

  static connect(o: ConnectOptions): Promise<MqttClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: o.host, port: o.port });
      const timer = setTimeout(() => { socket.destroy(); reject(new MqttError(`CONNECT ${o.clientId}: timeout`)); }, o.timeoutMs ?? 30_000);
      socket.once('error', (e) => { clearTimeout(timer); reject(e); });
      socket.once('connect', () => {
        const c = new MqttClient(socket);
        c.connackWaiter = (rc) => {
          clearTimeout(timer);
          c.connackWaiter = undefined;
          if (rc === 0) {
            // Keep the connection alive while it idles (memory test).
            const ka = o.keepalive ?? 60;
            if (ka > 0) { c.pinger = setInterval(() => c.write(PINGREQ), (ka * 1000) / 2); c.pinger.unref(); }
            resolve(c);
          } else {
            socket.destroy();
            reject(new MqttError(rc < 0 ? `CONNECT ${o.clientId}: connection closed` : `CONNECT ${o.clientId}: refused, code ${rc}`));
          }
        };
        socket.write(encodeConnect(o));
      });
    });
  }

  private packet(h: number, d: Buffer, s: number, e: number): void {
    switch (h >> 4) {
      case 3: { // PUBLISH
        const qos = (h >> 1) & 3;
        const tl = d.readUInt16BE(s);
        const topic = d.toString('utf8', s + 2, s + 2 + tl);
        let p = s + 2 + tl;
        if (qos > 0) { this.acks.push(encodePuback(d.readUInt16BE(p))); p += 2; }
        this.onPublish(topic, d.subarray(p, e), qos);
        break;
      }
      case 4: this.onPuback(d.readUInt16BE(s)); break;
      case 2: this.connackWaiter?.(d[s + 1]!); break;
      case 9: { // SUBACK
        const id = d.readUInt16BE(s);
        const codes = [...d.subarray(s + 2, e)];
        this.subWaiters.get(id)?.(codes);
        this.subWaiters.delete(id);
        break;
      }
      default: break; // PINGRESP and anything else
    }
  }

  /** A fresh packet id for QoS 1. */
  id(): number {
    const id = this.nextId;
    this.nextId = id === 65535 ? 1 : id + 1;
    return id;
  }

  /** Writes raw bytes; returns false when the socket's buffer is full. */
  write(b: Buffer): boolean {
    return this.socket.write(b);
  }

  publish(topic: Buffer, payload: Buffer, qos: 0 | 1): number {
    const id = qos ? this.id() : 0;
    this.socket.write(encodePublish(topic, payload, qos, id));
    return id;
  }

  async subscribe(filter: string, qos: 0 | 1): Promise<void> {
    const id = this.id();
    const codes = await new Promise<number[]>((resolve) => {
      this.subWaiters.set(id, resolve);
      this.socket.write(encodeSubscribe(id, filter, qos));
    });
    if (codes.length === 0) throw new MqttError(`SUBSCRIBE ${filter}: connection closed`);
    if (codes[0]! >= 0x80) throw new MqttError(`SUBSCRIBE ${filter}: refused (0x${codes[0]!.toString(16)})`);
  }

  /** DISCONNECT and close; resolves once the socket is closed (or destroyed after timeoutMs). */
  disconnect(timeoutMs = 5_000): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.end(DISCONNECT);
      setTimeout(() => this.socket.destroy(), timeoutMs).unref();
    });
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/**
 * One connect → CONNACK → DISCONNECT cycle on its own socket, the cheapest
 * possible client side, for the connect-rate test. Resolves at CONNACK
 * (the session is usable then); the DISCONNECT and close run on.
 */
export function connectOnce(o: ConnectOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: o.host, port: o.port });
    socket.setNoDelay(true);
    let tail: Buffer | null = null;
    let done = false;
    const timer = setTimeout(() => finish(new MqttError('timeout')), o.timeoutMs ?? 30_000);
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) { socket.destroy(); reject(err); } else resolve();
    };
    socket.on('error', (e) => finish(e));
    socket.on('close', () => finish(new MqttError('connection closed before CONNACK')));
    socket.once('connect', () => socket.write(encodeConnect(o)));
    socket.on('data', (chunk: Buffer) => {
      tail = splitPackets(tail, chunk, (h, d, s) => {
        if (h >> 4 !== 2 || done) return;
        const rc = d[s + 1]!;
        if (rc !== 0) return finish(new MqttError(`refused, code ${rc}`));
        socket.end(DISCONNECT);
        // Do not linger on a broker that keeps the socket open after DISCONNECT.
        setTimeout(() => socket.destroy(), 5_000).unref();
        finish();
      });
    });
  });
}
