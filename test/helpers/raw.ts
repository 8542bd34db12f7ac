// A raw XMPP socket for tests that must send exactly the bytes they mean, bad ones
// included, and read what the server answers.
import net from "node:net";
import tls from "node:tls";
import { Wakeup } from "./wait.js";

export const STREAM_OPEN = (to = "localhost", extra = "") =>
  `<?xml version='1.0'?><stream:stream to='${to}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'${extra}>`;

export class RawClient {
  buffer = "";
  /** Everything ever received (buffer is consumed by expect). */
  log = "";
  closed = false;
  /** The full JID bound by login(). */
  jid = "";
  private syncs = 0;
  private readonly arrivals = new Wakeup();
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
      this.arrivals.wake();
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      this.closed = true;
      this.arrivals.wake();
    });
  }

  send(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Waits until the received text matches, then returns the match and consumes up to it. */
  expect(pattern: RegExp, timeoutMs = 5000): Promise<RegExpMatchArray> {
    const received = () => this.buffer.slice(0, 500);
    return this.arrivals.until(
      () => {
        const m = this.buffer.match(pattern);
        if (m) {
          this.buffer = this.buffer.slice((m.index ?? 0) + m[0].length);
          return m;
        }
        if (this.closed) throw new Error(`connection closed before ${pattern}; received: ${received()}`);
        return undefined;
      },
      timeoutMs,
      () => new Error(`timed out waiting for ${pattern}; received: ${received()}`),
    );
  }

  /** Waits for the server to close the connection. */
  async waitClosed(timeoutMs = 5000): Promise<void> {
    await this.arrivals.until(() => this.closed || undefined, timeoutMs, () => new Error("connection still open"));
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

  /** Sends SASL PLAIN (RFC 4616) for `user`; the server's answer: its <success/> or its <failure>…</failure>. */
  async plainAuth(user: string, password: string, timeoutMs = 5000): Promise<string> {
    this.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${password}`).toString("base64")}</auth>`);
    return (await this.expect(/<(success|failure)\b[^>]*?(?:\/>|>.*?<\/\1>)/s, timeoutMs))[0];
  }

  /** Opens a stream and logs in with SASL PLAIN (over TLS unless `plaintext`), binds `resource`. */
  async login(user: string, password: string, opts: { resource?: string; tls?: boolean } = {}): Promise<string> {
    if (opts.tls !== false) await this.secureStream();
    else {
      this.send(STREAM_OPEN());
      await this.expect(/<\/stream:features>/);
    }
    const answer = await this.plainAuth(user, password);
    if (!answer.startsWith("<success")) throw new Error(`login as ${user} refused: ${answer}`);
    this.send(STREAM_OPEN());
    await this.expect(/<\/stream:features>/);
    this.send(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>${opts.resource ? `<resource>${opts.resource}</resource>` : ""}</bind></iq>`);
    const m = await this.expect(/<jid>([^<]+)<\/jid>/);
    await this.expect(/<\/iq>/);
    this.jid = m[1]!;
    return this.jid;
  }

  /** Pings the domain and waits for its result: everything sent before has been handled. */
  async sync(id = `sync${++this.syncs}`): Promise<void> {
    this.send(`<iq type='get' id='${id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await this.expect(new RegExp(`<iq(?=[^>]*type="result")[^>]*id="${id}"[^>]*/>`));
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A client logged in on `port` (see login) that has sent its initial presence and seen it handled. */
export async function online(port: number, user: string, password: string, opts: { resource?: string; tls?: boolean } = {}): Promise<RawClient> {
  const c = await RawClient.connect(port);
  await c.login(user, password, opts);
  c.send("<presence/>");
  await c.sync();
  return c;
}

/** A logged-in session that proves, on request, that the server still answers it. */
export async function witness(port: number, user: string, password: string, opts: { tls?: boolean } = {}) {
  const client = await RawClient.connect(port);
  await client.login(user, password, { resource: "witness", ...opts });
  return {
    client,
    async alive(t: { pass(message: string): void }): Promise<void> {
      await client.sync();
      t.pass("other sessions unaffected");
    },
  };
}
