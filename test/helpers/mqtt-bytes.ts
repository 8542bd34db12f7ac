// Raw MQTT 3.1.1 bytes built by hand, for tests that must send exactly what they
// mean, malformed packets included (the mqtt package refuses to).
/** Two-byte big-endian integer (§1.5.2). */
export const u16 = (n: number): Buffer => Buffer.from([(n >> 8) & 0xff, n & 0xff]);

/** Length-prefixed UTF-8 string (§1.5.3); a Buffer is sent as it is. */
export function utf8(s: string | Buffer): Buffer {
  const b = typeof s === "string" ? Buffer.from(s, "utf8") : s;
  return Buffer.concat([u16(b.length), b]);
}

/** Remaining Length (§2.2.3): 7 bits per byte, high bit set on all but the last. */
export function remainingLength(n: number): Buffer {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return Buffer.from(out);
}

/** A packet: first byte (type and flags), Remaining Length, body. */
export const packet = (first: number, body: Buffer): Buffer => Buffer.concat([Buffer.from([first]), remainingLength(body.length), body]);

/** CONNECT (§3.1) with clean session; user name and password when given. */
export function connectPacket(o: { clientId: string; username?: string; password?: string; keepalive?: number; protocol?: string }): Buffer {
  const flags = 0x02 | (o.username !== undefined ? 0x80 : 0) | (o.password !== undefined ? 0x40 : 0);
  return packet(
    0x10,
    Buffer.concat([
      utf8(o.protocol ?? "MQTT"),
      Buffer.from([4, flags]),
      u16(o.keepalive ?? 30),
      utf8(o.clientId),
      o.username !== undefined ? utf8(o.username) : Buffer.alloc(0),
      o.password !== undefined ? utf8(o.password) : Buffer.alloc(0),
    ]),
  );
}

/** PUBLISH at QoS 0 (§3.3). */
export const publishPacket = (topic: string, payload: string): Buffer => packet(0x30, Buffer.concat([utf8(topic), Buffer.from(payload)]));

/** SUBSCRIBE (§3.8) to one filter at QoS 0, packet id 1. */
export const subscribePacket = (filter: string): Buffer => packet(0x82, Buffer.concat([u16(1), utf8(filter), Buffer.from([0])]));
