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
import { Duplex } from "node:stream";
import { TokenBucket } from "../../src/limits.js";

export const WILDCARD_MARKS: Record<string, string> = { "\u0001": "+", "\u0002": "#" };
const PLUS = 0x2b;
const HASH = 0x23;

export type GuardVerdict = "oversize" | "malformed";

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
 * A duplex that aedes reads from and writes to in place of the socket. Bytes pass
 * through unchanged once their packet's header has been checked; backpressure from
 * aedes pauses the socket.
 */
export class GuardedConnection extends Duplex {
  private readonly scanner: FixedHeaderScanner;
  private readonly bucket: TokenBucket | null;
  /** Reads stop for two reasons: aedes is not reading, or the shaper says wait. */
  private backpressured = false;
  private throttled = false;

  constructor(
    readonly socket: Duplex & { remoteAddress?: string },
    maxPacketBytes: number,
    onReject: (verdict: GuardVerdict, packetBytes?: number) => void,
    shape?: { bytesPerSecond: number; burstBytes: number },
  ) {
    super({ allowHalfOpen: false });
    this.scanner = new FixedHeaderScanner(maxPacketBytes);
    this.bucket = shape ? new TokenBucket(shape.bytesPerSecond, shape.burstBytes) : null;
    socket.on("data", (chunk: Buffer) => {
      const rejected = this.scanner.scan(chunk);
      if (rejected) {
        onReject(rejected.verdict, rejected.packetBytes);
        socket.destroy();
        return;
      }
      if (!this.push(chunk)) {
        this.backpressured = true;
        socket.pause();
      }
      const wait = this.bucket?.take(chunk.length) ?? 0;
      if (wait > 0 && !this.throttled) {
        this.throttled = true;
        socket.pause();
        setTimeout(() => {
          this.throttled = false;
          if (!this.backpressured) socket.resume();
        }, wait).unref();
      }
    });
    socket.on("end", () => this.push(null));
    socket.on("error", (err) => this.destroy(err));
    socket.on("close", () => this.destroy());
    socket.on("drain", () => this.emit("socketDrain"));
  }

  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }

  override _read(): void {
    this.backpressured = false;
    if (!this.throttled) this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    if (this.socket.write(chunk)) done();
    else this.once("socketDrain", () => done());
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, done: (error?: Error | null) => void): void {
    const socket = this.socket as Duplex & { cork(): void; uncork(): void };
    socket.cork();
    let ok = true;
    for (const { chunk } of chunks) ok = socket.write(chunk);
    socket.uncork();
    if (ok) done();
    else this.once("socketDrain", () => done());
  }

  override _final(done: (error?: Error | null) => void): void {
    this.socket.end();
    done();
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    this.socket.destroy();
    this.emit("socketDrain");
    done(error);
  }
}
