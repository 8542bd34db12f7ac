// The MQTT listeners: TCP and TLS (the XMPP certificate, `mqtt.tlsPort`). Both hand
// each connection to `accept`, which puts the guard in front of aedes.
import net from "node:net";
import tls from "node:tls";
import type { Logger } from "../../src/log.js";
import { listen } from "../../src/listen.js";
import { TLS_SETTINGS } from "../../src/tls.js";
import type { MqttOptions } from "./options.js";

export interface MqttListeners {
  readonly ports: { mqtt: number; mqttTls: number | null };
  /** Stops accepting; resolves when the servers have closed. */
  close(): Promise<void>;
}

export async function openMqttListeners(options: MqttOptions, accept: (socket: net.Socket) => void, log: Logger): Promise<MqttListeners> {
  // TCP_NODELAY, as on the XMPP side (and EMQX's default): with Nagle's algorithm a
  // command published while a previous packet is unacknowledged waits for the
  // client's delayed ACK, up to 40 ms on Linux.
  const tcp = net.createServer({ noDelay: true }, accept);
  // handshakeTimeout: a socket that sends no ClientHello (or stalls mid-handshake) is
  // closed, not held open with its file descriptor (Node's default waits 120 s).
  const secure =
    options.tlsPort === null ? null : tls.createServer({ cert: options.tls.cert, key: options.tls.key, ...TLS_SETTINGS, handshakeTimeout: options.tlsHandshakeMs, noDelay: true }, accept);
  // With a listener here Node leaves the socket open (the handshake timeout included): closed here.
  secure?.on("tlsClientError", (err, socket) => {
    log.debug({ err: err.message }, "mqtt TLS handshake failed");
    socket.destroy();
  });
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
