// A raw XMPP socket for tests that must send exactly the bytes they mean, bad ones
// included, and read what the server answers.
import net from "node:net";
import tls from "node:tls";

export const STREAM_OPEN = (to = "localhost", extra = "") =>
  `<?xml version='1.0'?><stream:stream to='${to}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'${extra}>`;

export class RawClient {
  buffer = "";
  /** Everything ever received (buffer is consumed by expect). */
  log = "";
  closed = false;
  private waiters: Array<() => void> = [];
  private constructor(public socket: net.Socket | tls.TLSSocket) {
    this.attach(socket);
  }

  /** `localAddress` (another 127.x.y.z) makes the connection come from another address. */
  static connect(port: number, localAddress?: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: "127.0.0.1", localAddress }, () => resolve(new RawClient(socket)));
      socket.once("error", reject);
    });
  }

  private attach(socket: net.Socket | tls.TLSSocket): void {
    socket.setEncoding("utf8");
    socket.on("data", (d: string) => {
      this.buffer += d;
      this.log += d;
      this.wake();
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      this.closed = true;
      this.wake();
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  send(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Waits until the received text matches, then returns the match and consumes up to it. */
  async expect(pattern: RegExp, timeoutMs = 5000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.buffer.match(pattern);
      if (m) {
        this.buffer = this.buffer.slice((m.index ?? 0) + m[0].length);
        return m;
      }
      if (this.closed) throw new Error(`connection closed before ${pattern}; received: ${this.buffer.slice(0, 500)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${pattern}; received: ${this.buffer.slice(0, 500)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Waits for the server to close the connection. */
  async waitClosed(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error("connection still open");
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async startTls(): Promise<void> {
    this.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    await this.expect(/<proceed[^>]*\/>/);
    const raw = this.socket as net.Socket;
    raw.removeAllListeners("data");
    const secure = tls.connect({ socket: raw, rejectUnauthorized: false, servername: "localhost" });
    await new Promise<void>((resolve, reject) => {
      secure.once("secureConnect", resolve);
      secure.once("error", reject);
    });
    this.socket = secure;
    this.buffer = "";
    this.attach(secure);
  }

  /** Opens a stream, upgrades it with STARTTLS and opens it again: ready for SASL. */
  async secureStream(): Promise<void> {
    this.send(STREAM_OPEN());
    await this.expect(/<\/stream:features>/);
    await this.startTls();
    this.send(STREAM_OPEN());
    await this.expect(/<\/stream:features>/);
  }

  /** Opens a stream and logs in with SASL PLAIN (over TLS unless `plaintext`), binds `resource`. */
  async login(user: string, password: string, opts: { resource?: string; tls?: boolean } = {}): Promise<string> {
    if (opts.tls !== false) await this.secureStream();
    else {
      this.send(STREAM_OPEN());
      await this.expect(/<\/stream:features>/);
    }
    this.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${password}`).toString("base64")}</auth>`);
    await this.expect(/<success[^>]*\/>|<success[^>]*>[^<]*<\/success>/);
    this.send(STREAM_OPEN());
    await this.expect(/<\/stream:features>/);
    this.send(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>${opts.resource ? `<resource>${opts.resource}</resource>` : ""}</bind></iq>`);
    const m = await this.expect(/<jid>([^<]+)<\/jid>/);
    await this.expect(/<\/iq>/);
    return m[1]!;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A logged-in session that proves, on request, that the server still answers it. */
export async function witness(port: number, user: string, password: string, opts: { tls?: boolean } = {}) {
  const client = await RawClient.connect(port);
  await client.login(user, password, { resource: "witness", ...opts });
  let pings = 0;
  return {
    client,
    async alive(t: { pass(message: string): void }): Promise<void> {
      const id = `w${++pings}`;
      client.send(`<iq type='get' id='${id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
      await client.expect(new RegExp(`<iq[^>]*id="${id}"[^>]*type="result"|<iq[^>]*type="result"[^>]*id="${id}"`));
      t.pass("other sessions unaffected");
    },
  };
}
