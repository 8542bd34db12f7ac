// A raw MQTT connection for tests that must send exactly the bytes they mean (see
// mqtt-bytes.ts): it records what the broker sent back and when it closed.
import net from "node:net";
import { connectPacket } from "./mqtt-bytes.js";
import { Wakeup, withTimeout } from "./wait.js";

export const CONNACK = 2;
export const PUBACK = 4;
export const SUBACK = 9;
export const UNSUBACK = 11;

export class RawMqtt {
  received = Buffer.alloc(0);
  closed = false;
  private readonly arrivals = new Wakeup();

  private constructor(readonly socket: net.Socket) {
    socket.on("data", (d: Buffer) => {
      this.received = Buffer.concat([this.received, d]);
      this.arrivals.wake();
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      this.closed = true;
      this.arrivals.wake();
    });
  }

  static open(port: number): Promise<RawMqtt> {
    return withTimeout(
      new Promise((resolve, reject) => {
        const s = net.connect(port, "127.0.0.1", () => resolve(new RawMqtt(s)));
        s.once("error", reject);
      }),
      "raw TCP connect",
    );
  }

  private until(what: string, done: () => boolean, ms: number): Promise<true> {
    return this.arrivals.until(
      () => done() || undefined,
      ms,
      () => new Error(`timed out after ${ms} ms waiting for ${what}; received ${this.received.toString("hex")}, closed=${this.closed}`),
    );
  }

  /** The first byte of every whole packet received (§2.2). */
  packets(): number[] {
    const firsts: number[] = [];
    for (let at = 0; at < this.received.length; ) {
      let i = at + 1;
      let length = 0;
      for (let shift = 0; i < this.received.length; shift += 7) {
        const byte = this.received[i++]!;
        length += (byte & 0x7f) << shift;
        if (!(byte & 0x80)) break;
      }
      if (i + length > this.received.length) break;
      firsts.push(this.received[at]!);
      at = i + length;
    }
    return firsts;
  }

  /** How many packets of type `type` (§2.2.1) were received. */
  count(type: number): number {
    return this.packets().filter((first) => first >> 4 === type).length;
  }

  /** The CONNACK's return code (§3.2.2.3). */
  async connack(ms = 10_000): Promise<number> {
    await this.until("CONNACK", () => this.received.length >= 4 || this.closed, ms);
    if (this.received.length < 4 || this.received[0] !== 0x20 || this.received[1] !== 0x02)
      throw new Error(`no CONNACK; received ${this.received.toString("hex")}, closed=${this.closed}`);
    return this.received[3]!;
  }

  /** Sends CONNECT and waits for CONNACK 0. */
  async login(o: Parameters<typeof connectPacket>[0], ms?: number): Promise<void> {
    this.socket.write(connectPacket(o));
    const code = await this.connack(ms);
    if (code !== 0) throw new Error(`CONNACK ${code} for ${String(o.clientId)}`);
  }

  async waitClosed(ms = 10_000): Promise<void> {
    await this.until("the server to close the connection", () => this.closed, ms);
  }

  /** Waits up to `ms` for the broker to close the connection; true if it did. */
  async closedWithin(ms = 2_000): Promise<boolean> {
    await this.waitClosed(ms).catch(() => {});
    return this.closed;
  }

  destroy(): void {
    this.socket.destroy();
  }
}
