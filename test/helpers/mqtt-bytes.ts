// Raw MQTT 3.1.1 bytes built by hand, for tests that must send exactly what they
// mean, malformed packets included (the mqtt package refuses to).
import { lengthBytes } from "../../bench/common/mqtt.js";

/** Two-byte big-endian integer (§1.5.2). */
export const u16 = (n: number): Buffer => Buffer.from([(n >> 8) & 0xff, n & 0xff]);

/** Length-prefixed UTF-8 string (§1.5.3); a Buffer is sent as it is. */
export function utf8(s: string | Buffer): Buffer {
  const b = typeof s === "string" ? Buffer.from(s, "utf8") : s;
  return Buffer.concat([u16(b.length), b]);
}

/** Remaining Length (§2.2.3), as the bench's client encodes it. */
export const remainingLength = (n: number): Buffer => Buffer.from(lengthBytes(n));

/** A packet: first byte (type and flags), Remaining Length, body. */
export const packet = (first: number, body: Buffer): Buffer => Buffer.concat([Buffer.from([first]), remainingLength(body.length), body]);

/** CONNECT (§3.1) with clean session; a will (QoS 0), user name and password when given. */
export function connectPacket(o: {
  clientId: string | Buffer;
  username?: string | Buffer;
  password?: string;
  keepalive?: number;
  protocol?: string;
  will?: { topic: string | Buffer; message: string };
}): Buffer {
  const flags = 0x02 | (o.will ? 0x04 : 0) | (o.username !== undefined ? 0x80 : 0) | (o.password !== undefined ? 0x40 : 0);
  return packet(
    0x10,
    Buffer.concat([
      utf8(o.protocol ?? "MQTT"),
      Buffer.from([4, flags]),
      u16(o.keepalive ?? 30),
      utf8(o.clientId),
      o.will ? Buffer.concat([utf8(o.will.topic), utf8(o.will.message)]) : Buffer.alloc(0),
      o.username !== undefined ? utf8(o.username) : Buffer.alloc(0),
      o.password !== undefined ? utf8(o.password) : Buffer.alloc(0),
    ]),
  );
}

/** PUBLISH at QoS 0 (§3.3), or at QoS 1 with a packet id. */
export const publishPacket = (topic: string | Buffer, payload: string, id?: number): Buffer =>
  packet(id === undefined ? 0x30 : 0x32, Buffer.concat([utf8(topic), id === undefined ? Buffer.alloc(0) : u16(id), Buffer.from(payload)]));

/** SUBSCRIBE (§3.8) to one filter at QoS 0, packet id 1. */
export const subscribePacket = (filter: string | Buffer): Buffer => packet(0x82, Buffer.concat([u16(1), utf8(filter), Buffer.from([0])]));

/** UNSUBSCRIBE (§3.10) from one filter, packet id 2. */
export const unsubscribePacket = (filter: string | Buffer): Buffer => packet(0xa2, Buffer.concat([u16(2), utf8(filter)]));

/** Bytes from UTF-8 text and raw byte values, to put ill-formed strings on the wire. */
export const bytes = (...parts: Array<string | number[]>): Buffer => Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p, "utf8") : Buffer.from(p))));
