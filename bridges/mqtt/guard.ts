// aedes 1.x buffers a whole PUBLISH before it looks at it, so a 10 MB packet costs
// 10 MB. This guard sits between the socket and aedes and reads only the MQTT fixed
// header (MQTT 3.1.1 §2.2): a Remaining Length over the limit closes the connection
// before the body is buffered, as Mosquitto's max_packet_size does.
//
// It also defuses one thing aedes would disconnect for: a wildcard in a PUBLISH topic
// name (MQTT 3.1.1 §3.3.2.1). The contract wants such a publish dropped and reported
// on the device's errors topic with the connection kept, so `+` and `#` in a topic
// name are rewritten in place to the control characters below, which the topic ACL
// refuses and reports with the original characters.
import net from "node:net";
import { Duplex } from "node:stream";
import { TokenBucket, type Shape } from "../../src/limits.js";

export const WILDCARD_MARKS: Record<string, string> = { "\u0001": "+", "\u0002": "#" };
const PLUS = 0x2b;
const HASH = 0x23;

export type GuardVerdict = "oversize" | "malformed";

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

/** Tracks packet boundaries in a byte stream; returns a verdict when a packet must not be read. */
export class FixedHeaderScanner {
  private state: "type" | "length" | "topicLength1" | "topicLength2" | "topic" = "type";
  private publish = false;
  private length = 0;
  private multiplier = 1;
  private lengthBytes = 0;
  private skip = 0;
  private topicLeft = 0;

  constructor(private readonly maxPacketBytes: number) {}

  scan(chunk: Buffer): { verdict: GuardVerdict; packetBytes?: number } | null {
    let i = 0;
    while (i < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        this.skip -= n;
        i += n;
        continue;
      }
      const byte = chunk[i]!;
      if (this.state === "topic") {
        if (byte === PLUS) chunk[i] = 0x01;
        else if (byte === HASH) chunk[i] = 0x02;
        i++;
        this.length--;
        if (--this.topicLeft === 0) this.bodyDone();
        continue;
      }
      i++;
      if (this.state === "topicLength1" || this.state === "topicLength2") {
        this.topicLeft = this.state === "topicLength1" ? byte << 8 : this.topicLeft | byte;
        this.length--;
        this.state = this.state === "topicLength1" ? "topicLength2" : "topic";
        if (this.state === "topic" && (this.topicLeft === 0 || this.topicLeft > this.length)) this.bodyDone();
        continue;
      }
      if (this.state === "type") {
        this.publish = byte >> 4 === 3;
        this.state = "length";
        this.length = 0;
        this.multiplier = 1;
        this.lengthBytes = 0;
        continue;
      }
      // §2.2.3: Remaining Length is a variable-length integer of at most four bytes.
      this.length += (byte & 0x7f) * this.multiplier;
      this.multiplier *= 128;
      if (++this.lengthBytes > 4) return { verdict: "malformed" };
      if (byte & 0x80) continue;
      const packetBytes = 1 + this.lengthBytes + this.length;
      if (packetBytes > this.maxPacketBytes) return { verdict: "oversize", packetBytes };
      if (this.publish && this.length >= 2) this.state = "topicLength1";
      else this.bodyDone();
    }
    return null;
  }

  /** The rest of the current packet passes unread. */
  private bodyDone(): void {
    this.state = "type";
    this.skip = this.length;
  }
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
 * through unchanged once their packet's header has been checked, READ_BATCH_BYTES at
 * a time; reads from the socket stop while its inbox is full or the shaper says wait.
 *
 * Outbound, aedes 1.x respects write backpressure: past the stream's high-water
 * mark (`mqtt.outboundHighWaterBytes`) it waits for 'drain' before that delivery
 * completes, which holds its emitter and so the publishers' publishes, down to TCP;
 * a client that does not drain within its `drainTimeout` is destroyed with a
 * "drain timeout" error, reported here as a slow consumer.
 */
export class GuardedConnection extends Duplex {
  private readonly scanner: FixedHeaderScanner;
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
  /** With a tap: bytes not yet framed (an incomplete packet, or what waits for a slot). */
  private unframed: Buffer | null = null;
  /** Publishes the tap holds; reads stop at TAP_SLOTS until half are settled. */
  private tapped = 0;
  private tapFull = false;
  private readonly gathers: boolean;
  private readonly onSlowConsumer: ((conn: GuardedConnection) => void) | undefined;

  constructor(
    readonly socket: Duplex & { remoteAddress?: string },
    maxPacketBytes: number,
    onReject: (verdict: GuardVerdict, packetBytes?: number) => void,
    shape?: Shape,
    outbound?: { highWaterBytes: number; onSlowConsumer: (conn: GuardedConnection) => void },
    private readonly tap?: PublishTap,
  ) {
    super({ allowHalfOpen: false, readableHighWaterMark: READ_BATCH_BYTES, writableHighWaterMark: outbound?.highWaterBytes });
    this.onSlowConsumer = outbound?.onSlowConsumer;
    this.gathers = socket instanceof net.Socket;
    this.scanner = new FixedHeaderScanner(maxPacketBytes);
    this.bucket = shape ? new TokenBucket(shape.bytesPerSecond, shape.burstBytes) : null;
    socket.on("data", (chunk: Buffer) => {
      const rejected = this.scanner.scan(chunk);
      if (rejected) {
        onReject(rejected.verdict, rejected.packetBytes);
        socket.destroy();
        return;
      }
      const wait = this.bucket?.take(chunk.length) ?? 0;
      if (wait > 0 && !this.throttled) {
        this.throttled = true;
        socket.pause();
        setTimeout(() => {
          this.throttled = false;
          this.resumeIfFree();
        }, wait).unref();
      }
      if (this.tap) this.frame(chunk);
      else this.toAedes(chunk);
    });
    socket.on("end", () => {
      // What waits for a tap slot goes to aedes with the end of the stream behind it.
      if (this.unframed) this.toAedes(this.unframed);
      this.unframed = null;
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
   * With a tap, the stream is cut into whole packets (the scanner has already
   * refused any over the size limit, so an incomplete one held here is bounded).
   * A PUBLISH at QoS 0 or 1, not retained, is offered to the tap while nothing is
   * waiting for aedes on this connection, so packets are handled in the order they
   * came whichever path takes them; every other packet goes to aedes unchanged.
   */
  private frame(chunk: Buffer | null): void {
    let bytes = chunk === null ? this.unframed : this.unframed === null ? chunk : Buffer.concat([this.unframed, chunk]);
    this.unframed = null;
    if (bytes === null) return;
    /** Start of the run of packets not taken, which goes to aedes as one piece. */
    let run = 0;
    let at = 0;
    while (at < bytes.length && this.tapped < TAP_SLOTS) {
      // §2.2.3: Remaining Length, one to four bytes (the scanner refused longer).
      let i = at + 1;
      let length = 0;
      let multiplier = 1;
      let byte = 0x80;
      while (byte & 0x80 && i < bytes.length) {
        byte = bytes[i++]!;
        length += (byte & 0x7f) * multiplier;
        multiplier *= 128;
      }
      const end = i + length;
      if (byte & 0x80 || end > bytes.length) break;
      if (run === at && this.inbox.length === 0 && this.readableLength === 0) {
        const publish = inboundPublish(bytes, at, i, end);
        if (publish) {
          // Counted before the call: a tap may settle before it returns.
          this.tapped++;
          if (this.tap!(this, publish)) run = end;
          else this.tapped--;
        }
      }
      at = end;
    }
    if (at > run) this.toAedes(bytes.subarray(run, at));
    if (at < bytes.length) {
      this.unframed = bytes.subarray(at);
      if (this.tapped >= TAP_SLOTS && !this.tapFull) {
        this.tapFull = true;
        this.socket.pause();
      }
    }
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
