// XMPP c2s over TCP (RFC 6120 §3): one socket, one XML stream reader, STARTTLS
// upgrade in place. Output is corked per tick so a burst of stanzas to one client
// costs one write.
import net from "node:net";
import tls from "node:tls";
import { escapeXML, type Element } from "@xmpp/xml";
import type { Logger } from "../log.js";
import { StreamError } from "./errors.js";
import { utf8Decoder } from "./utf8.js";
import { listen } from "../listen.js";
import { acceptProxied } from "../proxy-protocol.js";
import { byteShaper, type Shape } from "../limits.js";
import { XMLStreamReader, type StreamLimits } from "./xml-stream.js";
import type { C2SStream } from "./c2s.js";
import type { C2STransport } from "./transport.js";

export interface TcpListenerOptions {
  host: string;
  port: number;
  tls: tls.SecureContext | null;
  /** Limits before authentication; the stream raises maxStanzaBytes after SASL success. */
  limits: StreamLimits;
  /** A peer that sends this much unread output is cut off rather than buffered without end. */
  maxOutputBytes?: number;
  /** Per-connection read rate (bytes/s, burst): over it, reads pause. */
  shape?: Shape;
  /** Per-address connection rate: false closes the new connection at once. */
  admit?: (address: string) => boolean;
  /** A STARTTLS handshake (and a PROXY header) not finished in this time closes the socket. */
  tlsHandshakeMs?: number;
  /** Connections open with a load balancer's PROXY protocol header (src/proxy-protocol.ts). */
  proxyProtocol?: boolean;
}

export interface Listener {
  readonly port: number;
  /** Stops accepting and ends every stream with `error`; resolves when all sockets are gone. */
  /** Ends every stream with `error` (system-shutdown by default). */
  close(error?: StreamError): Promise<void>;
  readonly connections: number;
}

type Socket = net.Socket | tls.TLSSocket;

export async function listenTcp(options: TcpListenerOptions, createStream: (transport: C2STransport) => C2SStream, log: Logger): Promise<Listener> {
  const { limits, maxOutputBytes = 8 * 1024 * 1024, tlsHandshakeMs = 10_000 } = options;
  const sockets = new Set<net.Socket>();
  const streams = new Set<C2SStream>();

  function accept(raw: net.Socket): void {
    if (options.admit && !options.admit(raw.remoteAddress ?? "unknown")) {
      raw.destroy();
      return;
    }
    sockets.add(raw);
    raw.setNoDelay(true);
    let socket: Socket = raw;
    let secure = false;
    let corked = false;
    let closing = false;
    let maxStanzaBytes = limits.maxStanzaBytes;
    let decoder = utf8Decoder();
    let reader: XMLStreamReader;

    // Pauses whichever socket currently carries the stream (plain, then TLS).
    const shaper = options.shape ? byteShaper({ pause: () => socket.pause(), resume: () => socket.resume() }, options.shape) : null;

    const transport: C2STransport = {
      remoteAddress: raw.remoteAddress ?? "unknown",
      get secure() {
        return secure;
      },
      canStartTls: options.tls !== null,
      sendHeader(attrs) {
        const list = Object.entries(attrs).map(([k, v]) => ` ${k}='${escapeXML(v)}'`).join("");
        write(`<?xml version='1.0'?><stream:stream${list}>`);
      },
      send: (element: Element) => write(element.toString()),
      close() {
        if (closing) return;
        closing = true;
        write("</stream:stream>");
        socket.end();
        // §4.4: wait a little for the peer's closing tag, then let go.
        setTimeout(() => socket.destroy(), 2000).unref();
      },
      startTls() {
        flush();
        raw.removeAllListeners("data");
        socket = new tls.TLSSocket(raw, { isServer: true, secureContext: options.tls! });
        // A TLSSocket made by hand has no handshake timeout (tls.Server's is not applied).
        const deadline = setTimeout(() => {
          log.debug({ address: transport.remoteAddress }, "TLS handshake not finished in time; closing");
          socket.destroy();
        }, tlsHandshakeMs);
        socket.on("secure", () => {
          clearTimeout(deadline);
          secure = true;
        });
        socket.on("close", () => clearTimeout(deadline));
        socket.on("error", (err) => log.debug({ err: err.message, address: transport.remoteAddress }, "TLS error"));
        socket.on("data", onData);
        socket.on("close", onClose);
        decoder = utf8Decoder();
        reader = newReader();
        secure = false;
      },
      restart() {
        decoder = utf8Decoder();
        reader = newReader();
      },
      setMaxStanzaBytes(bytes) {
        maxStanzaBytes = bytes;
        reader.limits = { ...reader.limits, maxStanzaBytes: bytes };
      },
      reshape: (next) => shaper?.reshape(next),
    };
    const stream = createStream(transport);
    streams.add(stream);

    function newReader(): XMLStreamReader {
      return new XMLStreamReader(
        { ...limits, maxStanzaBytes },
        {
          streamStart: (name, attrs) => stream.streamStart(name, attrs),
          stanza: (element) => stream.element(element),
          streamEnd: () => stream.streamEnd(),
          error: (error) => stream.transportError(error),
        },
      );
    }
    reader = newReader();

    function flush(): void {
      if (!corked) return;
      corked = false;
      socket.uncork();
    }
    function write(data: string): void {
      if (socket.destroyed || !socket.writable) return;
      if (!corked) {
        corked = true;
        socket.cork();
        process.nextTick(flush);
      }
      socket.write(data);
      if (socket.writableLength > maxOutputBytes && !closing) {
        closing = true;
        log.warn({ address: transport.remoteAddress, buffered: socket.writableLength }, "peer does not read; closing");
        socket.destroy();
      }
    }
    function onData(chunk: Buffer): void {
      shaper?.take(chunk.length);
      if (reader.closed) return;
      const text = decoder.write(chunk);
      if (text === null) return stream.transportError(new StreamError("unsupported-encoding", "the stream is not valid UTF-8"));
      reader.write(text);
    }

    raw.on("data", onData);
    raw.on("error", (err) => log.debug({ err: err.message, address: transport.remoteAddress }, "socket error"));
    // After STARTTLS the TLS socket owns the connection; either may report its end.
    function onClose(): void {
      sockets.delete(raw);
      streams.delete(stream);
      stream.transportClosed();
    }
    raw.on("close", onClose);
  }

  const refused = (address: string | undefined, reason: string) => log.info({ protocol: "xmpp", address, reason }, "PROXY protocol header refused; connection closed");
  const server = net.createServer(options.proxyProtocol ? acceptProxied(accept, { timeoutMs: tlsHandshakeMs, refused }) : accept);
  const port = await listen(server, options.port, options.host, { port: "xmpp.port", host: "xmpp.host" });
  // After the bind: a failed bind is the ListenError above, reported once by the caller.
  server.on("error", (err) => log.error({ err }, "xmpp listener error"));
  return {
    port,
    get connections() {
      return sockets.size;
    },
    close(error = new StreamError("system-shutdown")) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const stream of streams) stream.fail(error);
      // Peers get a moment to answer our </stream:stream>; then the sockets go.
      const force = setTimeout(() => sockets.forEach((s) => s.destroy()), 2000);
      return closed.finally(() => clearTimeout(force));
    },
  };
}
