// The MQTT listeners: TCP and TLS (the XMPP certificate, `mqtt.tlsPort`). Both hand
// each connection to `accept`, which puts the guard in front of aedes.
import net from "node:net";
import tls from "node:tls";
import type { Logger } from "../../src/log.js";
import { listen } from "../../src/listen.js";
import { TLS_SETTINGS } from "../../src/tls.js";
import { acceptProxied } from "../../src/proxy-protocol.js";
import type { MqttOptions } from "./options.js";

/** TLS on a socket whose PROXY header was read (what followed it is the ClientHello); its remoteAddress is the client's. */
function tlsAfterHeader(raw: net.Socket, secureContext: tls.SecureContext, handshakeMs: number, failed: (err: Error, socket: net.Socket) => void): tls.TLSSocket {
  const socket = new tls.TLSSocket(raw, { isServer: true, secureContext });
  Object.defineProperty(socket, "remoteAddress", { value: raw.remoteAddress, configurable: true });
  const timer = setTimeout(() => failed(new Error("TLS handshake timeout"), socket), handshakeMs);
  socket.once("secure", () => clearTimeout(timer));
  socket.once("close", () => clearTimeout(timer));
  socket.on("error", (err) => (clearTimeout(timer), failed(err, socket)));
  return socket;
}

export interface MqttListeners {
  readonly ports: { mqtt: number; mqttTls: number | null };
  /** Stops accepting; resolves when the servers have closed. */
  close(): Promise<void>;
}

export async function openMqttListeners(options: MqttOptions, accept: (socket: net.Socket) => void, log: Logger): Promise<MqttListeners> {
  // TCP_NODELAY, as on the XMPP side (and EMQX's default): with Nagle's algorithm a
  // command published while a previous packet is unacknowledged waits for the
  // client's delayed ACK, up to 40 ms on Linux.
  const refused = (address: string | undefined, reason: string) => log.info({ protocol: "mqtt", address, reason }, "PROXY protocol header refused; connection closed");
  const proxied = (handler: (socket: net.Socket) => void) => acceptProxied(handler, { timeoutMs: options.tlsHandshakeMs, refused });
  const tcp = net.createServer({ noDelay: true }, options.proxyProtocol ? proxied(accept) : accept);
  const tlsOptions = { cert: options.tls.cert, key: options.tls.key, ...TLS_SETTINGS };
  const handshakeFailed = (err: Error, socket: net.Socket) => {
    log.debug({ err: err.message }, "mqtt TLS handshake failed");
    socket.destroy();
  };
  let secure: net.Server | null = null;
  if (options.tlsPort !== null && options.proxyProtocol) {
    // The header comes before the ClientHello: TLS starts on the socket once it is read.
    const context = tls.createSecureContext(tlsOptions);
    secure = net.createServer({ noDelay: true }, proxied((raw) => accept(tlsAfterHeader(raw, context, options.tlsHandshakeMs, handshakeFailed))));
  } else if (options.tlsPort !== null) {
    // handshakeTimeout: a socket that sends no ClientHello (or stalls mid-handshake) is
    // closed, not held open with its file descriptor (Node's default waits 120 s).
    const server = tls.createServer({ ...tlsOptions, handshakeTimeout: options.tlsHandshakeMs, noDelay: true }, accept);
    // With a listener here Node leaves the socket open (the handshake timeout included): closed here.
    server.on("tlsClientError", handshakeFailed);
    secure = server;
  }
  const closed = (s: net.Server | null) => (s?.listening ? new Promise<void>((resolve) => s.close(() => resolve())) : Promise.resolve());
  try {
    const mqtt = await listen(tcp, options.port, options.host, { port: "mqtt.port", host: "mqtt.host" });
    const mqttTls = secure ? await listen(secure, options.tlsPort!, options.host, { port: "mqtt.tlsPort", host: "mqtt.host" }) : null;
    return { ports: { mqtt, mqttTls }, close: () => Promise.all([closed(tcp), closed(secure)]).then(() => {}) };
  } catch (err) {
    // The caller gets nothing to close: what was opened here is closed here.
    await closed(tcp);
    throw err;
  }
}
