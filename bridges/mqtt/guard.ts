// aedes 1.x buffers a whole PUBLISH before it looks at it, so a 10 MB packet costs
// 10 MB. This guard sits between the socket and aedes: it cuts the stream into whole
// packets (framing.ts), closes the connection as soon as one must not be read (over
// `mqtt.maxPacketBytes`, as Mosquitto's max_packet_size does; not MQTT; a refused
// string), paces reads, and offers telemetry to the telemetry path (telemetry-path.ts).
import net from "node:net";
import { Duplex } from "node:stream";
import { TokenBucket, type Shape } from "../../src/limits.js";
import { forgetCorked, uncorkAtCheck } from "./write-gather.js";
import { checkStrings, firstByteRefused, inboundPublish, readHeader, type GuardVerdict, type Header, type InboundPublish } from "./framing.js";

export type { GuardVerdict, InboundPublish } from "./framing.js";

/**
 * Takes a publish off aedes' path, or returns false to leave it to aedes. A taken
 * publish holds one of the connection's tap slots until `conn.settle()`.
 */
export type PublishTap = (conn: GuardedConnection, publish: InboundPublish) => boolean;

/**
 * Bytes handed to aedes per read. aedes parses everything one read() returns and
 * handles all of it (authorizePublish, spool commit, fan-out) before it reads again,
 * so this bounds the publishes in flight per connection; the rest waits here and
 * then in the socket, where TCP pushes back on the publisher, instead of queueing in
 * the broker (docs/benchmarks.md has the trade-off measured).
 */
const READ_BATCH_BYTES = 4 * 1024;
/** Inbound bytes held per connection before its socket is paused. */
const INBOX_MAX_BYTES = 64 * 1024;
/**
 * Publishes a tap may hold per connection (about what one READ_BATCH_BYTES read puts
 * in flight on aedes' path); past it, the rest waits here and the socket is paused.
 */
const TAP_SLOTS = 64;

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
  /** The first packet's first byte has come (and was a CONNECT's). */
  private begun = false;
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
      const early = firstByteRefused(bytes[at]! >> 4, !this.begun);
      if (early) return this.refuse(early);
      this.begun = true;
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
   * a delivery per message routed) leaves in one system call, not one per packet.
   * Completion is not delayed, only the call. TCP and TLS sockets only: a WebSocket
   * stream sends a frame per write anyway.
   */
  private gather(): void {
    if (this.corked || !this.gathers) return;
    this.corked = true;
    this.socket.cork();
    uncorkAtCheck(this);
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
    forgetCorked(this);
    this.socket.destroy();
    this.emit("socketDrain");
    done(error);
  }
}
