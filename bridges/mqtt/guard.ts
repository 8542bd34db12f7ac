// aedes 1.x buffers a whole PUBLISH before it looks at it, so a 10 MB packet costs
// 10 MB. This guard sits between the socket and aedes and cuts the stream into whole
// packets (MQTT 3.1.1 §2.2): a Remaining Length over the limit closes the connection
// as soon as the fixed header is in, before the body is buffered, as Mosquitto's
// max_packet_size does.
//
// Each whole packet that names a topic or a client is checked before aedes sees it:
// mqtt-packet decodes strings with replacement characters, so no hook could tell a bad
// one. A string that is not well-formed UTF-8 or contains U+0000 closes the connection
// (MQTT 3.1.1 §1.5.3), and so, as in Mosquitto, does one with a code point a server
// MAY close for (controls, non-characters).
//
// It also defuses one thing aedes would disconnect for: a wildcard in a PUBLISH topic
// name (MQTT 3.1.1 §3.3.2.1). The contract wants such a publish dropped and reported
// on the device's errors topic with the connection kept, so `+` and `#` in a topic
// name are rewritten in place to the control characters below, which the topic ACL
// refuses and reports with the original characters. A client cannot send those
// characters itself: the check above refuses them first.
import net from "node:net";
import { isUtf8 } from "node:buffer";
import { Duplex } from "node:stream";
import { TokenBucket, type Shape } from "../../src/limits.js";

export const WILDCARD_MARKS: Record<string, string> = { "\u0001": "+", "\u0002": "#" };
const PLUS = 0x2b;
const HASH = 0x23;

/** Why a connection was closed: a packet over the size limit, not MQTT, or with a string §1.5.3 refuses. */
export type GuardVerdict = "oversize" | "malformed" | "bad-utf8";

/** A whole PUBLISH at QoS 0 or 1, not retained, as it arrived (MQTT 3.1.1 §3.3). */
export interface InboundPublish {
  readonly qos: 0 | 1;
  /** 0 at QoS 0. */
  readonly messageId: number;
  /** The topic name's bytes are `bytes[topicStart, topicEnd)`. */
  readonly bytes: Buffer;
  readonly topicStart: number;
  readonly topicEnd: number;
  readonly payload: Buffer;
}

/**
 * Takes a publish off aedes' path, or returns false to leave it to aedes. A taken
 * publish holds one of the connection's tap slots until `conn.settle()`.
 */
export type PublishTap = (conn: GuardedConnection, publish: InboundPublish) => boolean;

/** Where a packet's body starts and where the packet ends, filled by readHeader. */
interface Header {
  body: number;
  end: number;
}

/**
 * §2.2.3: reads the fixed header of the packet at `bytes[at]` into `header`. "whole"
 * when the packet is all in `bytes`; "partial" when more bytes are needed; a verdict
 * as soon as the header shows the packet must not be read (`header.end` then says
 * where an oversized one would end).
 */
function readHeader(bytes: Buffer, at: number, maxPacketBytes: number, header: Header): "whole" | "partial" | GuardVerdict {
  let length = 0;
  let i = at + 1;
  for (let multiplier = 1; ; multiplier *= 128) {
    if (i >= bytes.length) return "partial";
    const byte = bytes[i++]!;
    length += (byte & 0x7f) * multiplier;
    if (!(byte & 0x80)) break;
    // A variable-length integer of at most four bytes.
    if (i - at > 4) return "malformed";
  }
  header.body = i;
  header.end = i + length;
  if (header.end - at > maxPacketBytes) return "oversize";
  return header.end > bytes.length ? "partial" : "whole";
}

/**
 * The strings of a whole packet that name a topic or a client: a PUBLISH's topic name
 * (whose wildcards are marked once it is checked), SUBSCRIBE's and UNSUBSCRIBE's topic
 * filters, CONNECT's client id, will topic and user name. Returns a verdict, or null
 * for a good packet or one of another type.
 */
function checkStrings(bytes: Buffer, at: number, body: number, end: number): GuardVerdict | null {
  switch (bytes[at]! >> 4) {
    case 3: {
      // §3.3.2.1: the topic name comes first.
      const topicEnd = stringEnd(bytes, body, end);
      if (topicEnd < 0) return "malformed";
      return topicName(bytes, body + 2, topicEnd) ? null : "bad-utf8";
    }
    case 8:
      // §3.8.3: after the packet identifier, filters each followed by a QoS byte.
      return filters(bytes, body + 2, end, 1);
    case 10:
      // §3.10.3: after the packet identifier, filters.
      return filters(bytes, body + 2, end, 0);
    case 1:
      return connect(bytes, body, end);
    default:
      return null;
  }
}

/** The end of the length-prefixed string (§1.5.3) at `bytes[at]`, or -1 if it overruns `end`. */
function stringEnd(bytes: Buffer, at: number, end: number): number {
  if (at + 2 > end) return -1;
  const stop = at + 2 + bytes.readUInt16BE(at);
  return stop > end ? -1 : stop;
}

function filters(bytes: Buffer, at: number, end: number, trailer: number): GuardVerdict | null {
  while (at < end) {
    const stop = stringEnd(bytes, at, end);
    if (stop < 0 || stop + trailer > end) return "malformed";
    if (!plainString(bytes, at + 2, stop)) return "bad-utf8";
    at = stop + trailer;
  }
  return null;
}

/** §3.1: a CONNECT of protocol level 3 or 4; aedes refuses any other level [MQTT-3.1.2-2]. */
function connect(bytes: Buffer, body: number, end: number): GuardVerdict | null {
  const name = stringEnd(bytes, body, end);
  if (name < 0 || name + 4 > end) return "malformed";
  const level = bytes[name]!;
  const flags = bytes[name + 1]!;
  if (level !== 3 && level !== 4) return null;
  // §3.1.3: client id, then the will topic and message if the will flag is set, then the user name if its flag is.
  let at = name + 4;
  const clientId = stringEnd(bytes, at, end);
  if (clientId < 0) return "malformed";
  if (!plainString(bytes, at + 2, clientId)) return "bad-utf8";
  at = clientId;
  if (flags & 0x04) {
    const willTopic = stringEnd(bytes, at, end);
    const willMessage = willTopic < 0 ? -1 : stringEnd(bytes, willTopic, end);
    if (willMessage < 0) return "malformed";
    if (!plainString(bytes, at + 2, willTopic)) return "bad-utf8";
    at = willMessage;
  }
  if (flags & 0x80) {
    const username = stringEnd(bytes, at, end);
    if (username < 0) return "malformed";
    if (!plainString(bytes, at + 2, username)) return "bad-utf8";
  }
  return null;
}

/**
 * Whether `bytes[start, end)` is a string this broker takes (§1.5.3): no U+0000
 * [MQTT-1.5.3-2] [MQTT-4.7.3-2] nor other controls (U+0001–U+001F, U+007F–U+009F, which
 * a server MAY close for), well-formed UTF-8 [MQTT-1.5.3-1]. ASCII, nearly every
 * topic, is one short loop.
 */
function plainString(bytes: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const byte = bytes[i]!;
    if (byte >= 0x80) return nonAscii(bytes, i, end);
    if (byte < 0x20 || byte === 0x7f) return false;
  }
  return true;
}

/** plainString for a PUBLISH topic name, marking its wildcards as it goes (in one pass on the hot path). */
function topicName(bytes: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const byte = bytes[i]!;
    if (byte >= 0x80) {
      if (!nonAscii(bytes, i, end)) return false;
      markWildcards(bytes, i, end);
      return true;
    }
    if (byte < 0x20 || byte === 0x7f) return false;
    if (byte === PLUS) bytes[i] = 0x01;
    else if (byte === HASH) bytes[i] = 0x02;
  }
  return true;
}

function markWildcards(bytes: Buffer, start: number, end: number): void {
  for (let i = start; i < end; i++) {
    if (bytes[i] === PLUS) bytes[i] = 0x01;
    else if (bytes[i] === HASH) bytes[i] = 0x02;
  }
}

/**
 * The rest of a string from its first non-ASCII byte. Node's validator refuses what is
 * ill-formed (overlong forms, surrogates, code points past U+10FFFF, cut sequences);
 * then, on well-formed bytes, the code points a server MAY close for: controls and,
 * as Mosquitto, non-characters (U+FDD0–U+FDEF and the last two of every plane).
 */
function nonAscii(bytes: Buffer, start: number, end: number): boolean {
  if (!isUtf8(bytes.subarray(start, end))) return false;
  for (let i = start; i < end; i++) {
    const byte = bytes[i]!;
    if (byte < 0x80) {
      if (byte < 0x20 || byte === 0x7f) return false;
    } else if (byte === 0xc2) {
      // U+0080–U+009F: C2 80 – C2 9F.
      if (bytes[i + 1]! < 0xa0) return false;
    } else if (byte === 0xef) {
      // U+FDD0–U+FDEF: EF B7 90 – EF B7 AF; U+FFFE, U+FFFF: EF BF BE, EF BF BF.
      const second = bytes[i + 1]!;
      const third = bytes[i + 2]!;
      if ((second === 0xb7 && third >= 0x90 && third <= 0xaf) || (second === 0xbf && third >= 0xbe)) return false;
    } else if (byte >= 0xf0) {
      // U+1FFFE, U+1FFFF … U+10FFFF: the code point's low 16 bits all ones but the last.
      if ((bytes[i + 1]! & 0x0f) === 0x0f && bytes[i + 2] === 0xbf && bytes[i + 3]! >= 0xbe) return false;
    }
  }
  return true;
}

/**
 * Bytes handed to aedes per read. aedes parses everything one read() returns and
 * handles all of it (authorizePublish, spool commit, fan-out) before it reads again,
 * so this bounds the publishes in flight per connection; the rest waits here and
 * then in the socket, where TCP pushes back on the publisher. Without it a 64 KiB
 * socket read is ~600 telemetry messages in flight per client, and a flood of them
 * queues in the broker (seconds of latency, hundreds of MiB) instead of in the network.
 * (16 KiB, ~150 publishes, gave ~10 % more QoS 1 throughput in bench/mqtt but
 * held 2.5 times the memory during a QoS 0 flood: not taken.)
 */
const READ_BATCH_BYTES = 4 * 1024;
/** Inbound bytes held per connection before its socket is paused. */
const INBOX_MAX_BYTES = 64 * 1024;
/**
 * Publishes a tap may hold per connection (about what one READ_BATCH_BYTES read puts
 * in flight on aedes' path); past it, the rest waits here and the socket is paused.
 */
const TAP_SLOTS = 64;

/** The PUBLISH in `bytes[start, end)` (body from `body`) if it is one a tap may take. */
function inboundPublish(bytes: Buffer, start: number, body: number, end: number): InboundPublish | null {
  const first = bytes[start]!;
  // §3.3.1: type 3; QoS 0 or 1 with retain 0; DUP must be 0 at QoS 0 (MQTT-3.3.1-2).
  if (first >> 4 !== 3 || first & 0x01) return null;
  const qos = (first >> 1) & 0x03;
  if (qos > 1 || (qos === 0 && first & 0x08)) return null;
  if (end - body < 2) return null;
  const topicStart = body + 2;
  const topicEnd = topicStart + bytes.readUInt16BE(body);
  const payloadStart = topicEnd + qos * 2;
  if (payloadStart > end) return null;
  const messageId = qos === 1 ? bytes.readUInt16BE(topicEnd) : 0;
  // §2.3.1: a QoS 1 PUBLISH has a non-zero packet identifier; aedes answers the rest.
  if (qos === 1 && messageId === 0) return null;
  return { qos: qos as 0 | 1, messageId, bytes, topicStart, topicEnd, payload: bytes.subarray(payloadStart, end) };
}

/** Connections whose socket is corked this turn; one check-phase callback uncorks them all. */
let gathered = new Set<GuardedConnection>();
function flushGathered(): void {
  // A fresh set first: a write made while flushing gathers for the next turn.
  const conns = gathered;
  gathered = new Set();
  for (const conn of conns) conn.flushGathered();
}

/**
 * A duplex that aedes reads from and writes to in place of the socket. Bytes pass
 * through unchanged (but for marked wildcards) once their packet is whole and checked,
 * READ_BATCH_BYTES at a time; reads from the socket stop while its inbox is full or
 * the shaper says wait.
 *
 * Outbound, aedes 1.x respects write backpressure: past the stream's high-water
 * mark (`mqtt.outboundHighWaterBytes`) it waits for 'drain' before that delivery
 * completes, which holds its emitter and so the publishers' publishes, down to TCP;
 * a client that does not drain within its `drainTimeout` is destroyed with a
 * "drain timeout" error, reported here as a slow consumer.
 */
export class GuardedConnection extends Duplex {
  private readonly bucket: TokenBucket | null;
  private readonly inbox: Buffer[] = [];
  private inboxBytes = 0;
  private ended = false;
  /** aedes asked for data and none was given yet. */
  private wanted = false;
  /** Socket reads stop for two reasons: the inbox is full, or the shaper says wait. */
  private full = false;
  private throttled = false;
  /** The socket is corked until the check phase (gather). */
  private corked = false;
  /** Bytes not yet handed on: an incomplete packet, or what waits for a tap slot. */
  private unframed: Buffer | null = null;
  /** How many bytes at the start of `unframed` are whole packets already checked. */
  private checked = 0;
  private readonly header: Header = { body: 0, end: 0 };
  /** Publishes the tap holds; reads stop at TAP_SLOTS until half are settled. */
  private tapped = 0;
  private tapFull = false;
  private readonly gathers: boolean;
  private readonly onSlowConsumer: ((conn: GuardedConnection) => void) | undefined;

  constructor(
    readonly socket: Duplex & { remoteAddress?: string },
    private readonly maxPacketBytes: number,
    private readonly onReject: (verdict: GuardVerdict, packetBytes?: number) => void,
    shape?: Shape,
    outbound?: { highWaterBytes: number; onSlowConsumer: (conn: GuardedConnection) => void },
    private readonly tap?: PublishTap,
  ) {
    super({ allowHalfOpen: false, readableHighWaterMark: READ_BATCH_BYTES, writableHighWaterMark: outbound?.highWaterBytes });
    this.onSlowConsumer = outbound?.onSlowConsumer;
    this.gathers = socket instanceof net.Socket;
    this.bucket = shape ? new TokenBucket(shape.bytesPerSecond, shape.burstBytes) : null;
    socket.on("data", (chunk: Buffer) => {
      const wait = this.bucket?.take(chunk.length) ?? 0;
      if (wait > 0 && !this.throttled) {
        this.throttled = true;
        socket.pause();
        setTimeout(() => {
          this.throttled = false;
          this.resumeIfFree();
        }, wait).unref();
      }
      this.frame(chunk);
    });
    socket.on("end", () => {
      // What waits for a tap slot goes to aedes with the end of the stream behind it:
      // whole packets already checked, and at most one incomplete packet aedes cannot read.
      if (this.unframed) this.toAedes(this.unframed);
      this.unframed = null;
      this.checked = 0;
      this.ended = true;
      if (this.wanted) this.feed();
    });
    socket.on("error", (err) => this.destroy(err));
    socket.on("close", () => this.destroy());
    socket.on("drain", () => this.emit("socketDrain"));
  }

  /** Bytes for aedes, in order, through the inbox. */
  private toAedes(bytes: Buffer): void {
    this.inbox.push(bytes);
    this.inboxBytes += bytes.length;
    if (this.inboxBytes >= INBOX_MAX_BYTES && !this.full) {
      this.full = true;
      this.socket.pause();
    }
    if (this.wanted) this.feed();
  }

  private resumeIfFree(): void {
    if (!this.full && !this.throttled && !this.tapFull) this.socket.resume();
  }

  /**
   * Cuts the stream into whole packets and checks each one once, as soon as it is
   * whole, even while it waits for a tap slot. A refused one closes the connection at
   * once: aedes gets neither it nor the packets before it in this read. A PUBLISH at
   * QoS 0 or 1, not retained, is offered to the tap while nothing is waiting for aedes
   * on this connection, so packets are handled in the order they came whichever path
   * takes them; every other packet goes to aedes.
   */
  private frame(chunk: Buffer | null): void {
    const bytes = chunk === null ? this.unframed : this.unframed === null ? chunk : Buffer.concat([this.unframed, chunk]);
    this.unframed = null;
    if (bytes === null) return;
    const header = this.header;
    /** Start of the run of packets not taken, which goes to aedes as one piece. */
    let run = 0;
    /** Start of the first packet that waits for a tap slot (and all after it), or -1. */
    let held = -1;
    let at = 0;
    for (; at < bytes.length; at = header.end) {
      const read = readHeader(bytes, at, this.maxPacketBytes, header);
      if (read === "partial") break;
      if (read !== "whole") return this.refuse(read, read === "oversize" ? header.end - at : undefined);
      // Once only: a packet that waited for a slot was checked, and its wildcards marked, when it came.
      if (at >= this.checked) {
        const verdict = checkStrings(bytes, at, header.body, header.end);
        if (verdict) return this.refuse(verdict);
      }
      if (held >= 0) continue;
      if (this.tapped >= TAP_SLOTS) {
        held = at;
        continue;
      }
      if (this.tap && run === at && this.inbox.length === 0 && this.readableLength === 0) {
        const publish = inboundPublish(bytes, at, header.body, header.end);
        if (publish) {
          // Counted before the call: a tap may settle before it returns.
          this.tapped++;
          if (this.tap(this, publish)) run = header.end;
          else this.tapped--;
        }
      }
    }
    const handed = held >= 0 ? held : at;
    if (handed > run) this.toAedes(bytes.subarray(run, handed));
    this.checked = at - handed;
    if (handed < bytes.length) {
      this.unframed = bytes.subarray(handed);
      if (this.tapped >= TAP_SLOTS && !this.tapFull) {
        this.tapFull = true;
        this.socket.pause();
      }
    }
  }

  private refuse(verdict: GuardVerdict, packetBytes?: number): void {
    this.unframed = null;
    this.onReject(verdict, packetBytes);
    this.socket.destroy();
  }

  /** The tap is done with one publish. */
  settle(): void {
    this.tapped--;
    if (this.tapFull && this.tapped <= TAP_SLOTS / 2) {
      this.tapFull = false;
      if (!this.destroyed) this.frame(null);
      if (!this.tapFull) this.resumeIfFree();
    }
  }

  /**
   * Bytes straight to the socket, past the stream aedes writes into (a tap's
   * PUBACK); gathered like aedes' writes. `done` waits for the socket to drain when
   * it is over its high-water mark, as aedes waits before its next read.
   */
  sendRaw(bytes: Buffer, done: () => void): void {
    if (this.destroyed) return done();
    this.gather();
    if (this.socket.write(bytes)) done();
    else this.once("socketDrain", done);
  }

  /** A new read rate, e.g. once the client's account is known. */
  reshape(shape: Shape): void {
    this.bucket?.reshape(shape.bytesPerSecond, shape.burstBytes);
  }

  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }

  /** Hands aedes the next batch of the inbox, if it wants one. */
  private feed(): void {
    if (!this.wanted || this.destroyed) return;
    if (this.inbox.length === 0) {
      if (this.ended) this.push(null);
      return;
    }
    let chunk = this.inbox[0]!;
    if (chunk.length > READ_BATCH_BYTES) {
      this.inbox[0] = chunk.subarray(READ_BATCH_BYTES);
      chunk = chunk.subarray(0, READ_BATCH_BYTES);
    } else {
      this.inbox.shift();
    }
    this.inboxBytes -= chunk.length;
    if (this.full && this.inboxBytes < INBOX_MAX_BYTES / 2) {
      this.full = false;
      this.resumeIfFree();
    }
    this.wanted = false;
    this.push(chunk);
  }

  override _read(): void {
    this.wanted = true;
    this.feed();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.gather();
    if (this.socket.write(chunk)) done();
    else this.once("socketDrain", () => done());
  }

  /**
   * mqtt-packet writes a packet in pieces (a PUBLISH is six writes: header, length,
   * topic length, topic, id, payload) inside a cork of this stream; they arrive here
   * together and go to the socket as one buffer, not one socket write each.
   */
  override _writev(chunks: Array<{ chunk: Buffer }>, done: (error?: Error | null) => void): void {
    this.gather();
    if (this.socket.write(Buffer.concat(chunks.map((c) => c.chunk)))) done();
    else this.once("socketDrain", () => done());
  }

  /**
   * Holds this turn's writes in the socket until the event loop's check phase, so
   * everything one poll phase produced for this client (a PUBACK per publish read,
   * a delivery per message routed) leaves in one syscall: one write per packet was
   * a third of the broker's CPU. Completion is not delayed, only the syscall.
   * TCP and TLS sockets only: a WebSocket stream sends a frame per write anyway.
   */
  private gather(): void {
    if (this.corked || !this.gathers) return;
    this.corked = true;
    this.socket.cork();
    if (gathered.size === 0) setImmediate(flushGathered);
    gathered.add(this);
  }

  /** Sends what this turn gathered (called once per turn, and before a destroy). */
  flushGathered(): void {
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork();
  }

  override _final(done: (error?: Error | null) => void): void {
    this.socket.end();
    done();
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    if (error?.message === "drain timeout") this.onSlowConsumer?.(this);
    // What aedes wrote last (a refusing CONNACK) still goes out before the close.
    this.flushGathered();
    gathered.delete(this);
    this.socket.destroy();
    this.emit("socketDrain");
    done(error);
  }
}
