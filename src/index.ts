// The broker, wired: this file is the table of contents. Each part gets only the
// collaborators it needs; nothing here opens a port before the config is valid
// (the caller validated it) and the stores are open.
import { resolve } from "node:path";
import type { Config } from "./config.js";
import { createLogger, type Logger } from "./log.js";
import { openSqliteRegistry } from "./registry/sqlite.js";
import type { Registry } from "./registry/registry.js";
import { createAuthenticator } from "./auth/credentials.js";
import { createFailureLimiter } from "./auth/limiter.js";
import { loadTls } from "./tls.js";
import { createXmppServer, type XmppServer } from "./xmpp/server.js";
import { listenTcp } from "./xmpp/tcp.js";
import { StreamError } from "./xmpp/errors.js";
import { startHttp } from "./http/server.js";
import { createDeviceAgent } from "./xmpp/modules/device-agent.js";
import { startMqtt, type MqttBroker } from "../bridges/mqtt/broker.js";
import { mqttPresence } from "../bridges/mqtt/presence.js";
import { mqttWebSocket } from "../bridges/mqtt/websocket.js";

export interface Broker {
  ports: { xmpp: number; mqtt: number | null; mqttTls: number | null; http: number };
  registry: Registry;
  xmpp: XmppServer;
  mqtt: MqttBroker;
  stop(): Promise<void>;
}

/** Most elements in one stanza (the limit; Prosody has none, ejabberd similar). */
const MAX_CHILDREN = 10_000;

export async function startBroker(config: Config, opts: { log?: Logger } = {}): Promise<Broker> {
  const log = opts.log ?? createLogger();
  const dataDir = resolve(config.dataDir);
  const registry = openSqliteRegistry({ dataDir });
  const tls = await loadTls({ domain: config.domain, dataDir, cert: config.xmpp.tls?.cert, key: config.xmpp.tls?.key });
  const auth = createAuthenticator({ registry, domain: config.domain, iterations: config.auth.scramIterations });
  const limiter = createFailureLimiter({ freeFailures: config.auth.failuresBeforeDelay, delayMs: config.auth.failureDelayMs });

  const xmpp = createXmppServer({
    options: {
      domain: config.domain,
      requireTls: config.xmpp.requireTls,
      maxStanzaBytes: config.xmpp.maxStanzaBytes,
      negotiationTimeoutMs: config.xmpp.negotiationTimeoutMs,
    },
    registry,
    auth,
    limiter,
    log,
  });

  const agent = createDeviceAgent({ router: xmpp.router });
  const listeners: Array<{ close(error: StreamError): Promise<void> }> = [];
  try {
    // MQTT first: on shutdown it closes first too, so every device's unavailable
    // reaches XMPP watchers before their own streams end.
    const mqtt = await startMqtt({
      options: { host: config.mqtt.host, port: config.mqtt.port, tlsPort: config.mqtt.tlsPort, maxPacketBytes: config.mqtt.maxPacketBytes, tls: tls.context },
      auth,
      limiter,
      presence: mqttPresence({ router: xmpp.router, presence: xmpp.presence, agent }),
      log,
    });
    listeners.push({ close: () => mqtt.close() });
    const mqttWs = mqttWebSocket(mqtt, config.mqtt.maxPacketBytes);
    const c2s = await listenTcp(
      {
        host: config.xmpp.host,
        port: config.xmpp.port,
        tls: tls.context,
        limits: { maxStanzaBytes: Math.min(config.xmpp.maxPreAuthStanzaBytes, config.xmpp.maxStanzaBytes), maxChildren: MAX_CHILDREN },
      },
      xmpp.openStream,
      log,
    );
    listeners.push(c2s);
    const http = await startHttp({ host: config.http.host, port: config.http.port, log, ready: () => ({ ok: true }), upgrades: { "/mqtt": mqttWs.upgrade } });
    listeners.unshift({ close: () => (mqttWs.close(), http.close()) });

    const ports = { xmpp: c2s.port, mqtt: mqtt.ports.mqtt, mqttTls: mqtt.ports.mqttTls, http: http.port };
    log.info({ ...ports, domain: config.domain, dataDir, tls: tls.source }, "listening");

    let stopped = false;
    return {
      ports,
      registry,
      xmpp,
      mqtt,
      async stop() {
        if (stopped) return;
        stopped = true;
        // In order: HTTP, MQTT (devices' unavailable goes out), then XMPP streams
        // end with system-shutdown.
        for (const listener of listeners) await listener.close(new StreamError("system-shutdown"));
        registry.close();
        log.info("stopped");
      },
    };
  } catch (err) {
    for (const listener of listeners) await listener.close(new StreamError("system-shutdown"));
    registry.close();
    throw err;
  }
}
