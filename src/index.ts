// The broker, wired: this file is the table of contents. Each part gets only the
// collaborators it needs; the caller validated the config, and no port opens before
// the stores are open.
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Config } from "./config.js";
import { createLogger, type Logger } from "./log.js";
import { openSqliteRegistry } from "./registry/sqlite.js";
import type { Registry } from "./registry/registry.js";
import { createAuthenticator } from "./auth/credentials.js";
import { startHashPool } from "./auth/hash-pool.js";
import { createFailureLimiter } from "./auth/limiter.js";
import { createLogin } from "./auth/login.js";
import { createMetrics, type Metrics } from "./metrics.js";
import { connectionRateLimiter, type Shape } from "./limits.js";
import { loadTls } from "./tls.js";
import { createXmppServer, type XmppServer } from "./xmpp/server.js";
import { listenTcp } from "./xmpp/tcp.js";
import { xmppWebSocket } from "./xmpp/websocket.js";
import { StreamError } from "./xmpp/errors.js";
import { createDeviceAgent } from "./xmpp/modules/device-agent.js";
import { pubsubModule } from "./xmpp/modules/pubsub.js";
import { adhocModule, type CommandRunner } from "./xmpp/modules/adhoc.js";
import { createDispatcher, type Dispatcher } from "./commands/dispatch.js";
import { sensorDataModule } from "./xmpp/modules/sensordata.js";
import { controlModule } from "./xmpp/modules/control.js";
import { hostCommandsModule } from "./xmpp/modules/host-commands.js";
import { startHttp } from "./http/server.js";
import { openSpool, spoolFile } from "./telemetry/spool.js";
import { openSqliteStore } from "./telemetry/sqlite-store.js";
import { createInfluxStore } from "./telemetry/influx-store.js";
import type { TelemetryStore } from "./telemetry/store.js";
import { startDrainer, type Drainer } from "./telemetry/drainer.js";
import { createIngest, type Ingest } from "./telemetry/ingest.js";
import { sampleJson } from "./telemetry/sample.js";
import { deviceTypes as shippedTypes, type DeviceType } from "../devices/index.js";
import { startMqtt, type MqttBroker, type MqttOptions } from "../bridges/mqtt/broker.js";
import { mqttPresence } from "../bridges/mqtt/presence.js";
import { mqttWebSocket } from "../bridges/mqtt/websocket.js";
import { deviceTopic } from "../bridges/mqtt/acl.js";
import { startBridge, type Bridge } from "../bridges/remote/bridge.js";
import { bridgeDisco } from "../bridges/remote/disco.js";
import { addAccount } from "./provision.js";

export interface Broker {
  ports: { xmpp: number; mqtt: number; mqttTls: number | null; http: number };
  registry: Registry;
  xmpp: XmppServer;
  mqtt: MqttBroker;
  ingest: Ingest;
  drainer: Drainer;
  store: TelemetryStore;
  dispatcher: Dispatcher;
  commands: CommandRunner;
  commandOutcomes: Map<string, number>;
  stop(): Promise<void>;
}

export interface BrokerOptions {
  log?: Logger;
  /** The device types; the shipped ones by default (tests add their own). */
  deviceTypes?: readonly DeviceType[];
}

/** The built operator console: dist/console, whether this file runs from src/ (tsx) or dist/src/. */
const CONSOLE_DIR = fileURLToPath(new URL(import.meta.url.includes("/dist/src/") ? "../console" : "../dist/console", import.meta.url));

/** Read rates from `limits`: every connection's, and a service account's once authenticated. */
export function limitShapes(config: Config): { shape: Shape; serviceShape: Shape } {
  return {
    shape: { bytesPerSecond: config.limits.bytesPerSecond, burstBytes: config.limits.burstBytes },
    serviceShape: { bytesPerSecond: config.limits.serviceBytesPerSecond, burstBytes: config.limits.serviceBurstBytes },
  };
}

/** The MQTT listeners' options from the config (bench/common/switchboard-mqtt-layer.mjs wires them the same way). */
export function mqttOptions(config: Config, tls: MqttOptions["tls"], admit: (address: string) => boolean): MqttOptions {
  const { mqtt } = config;
  return {
    host: mqtt.host,
    port: mqtt.port,
    tlsPort: mqtt.tlsPort,
    maxPacketBytes: mqtt.maxPacketBytes,
    outboundHighWaterBytes: mqtt.outboundHighWaterBytes,
    slowConsumerTimeoutMs: mqtt.slowConsumerTimeoutMs,
    tls,
    tlsHandshakeMs: config.limits.tlsHandshakeMs,
    ...limitShapes(config),
    admit,
  };
}

/** Most elements in one stanza (the limit). */
const MAX_CHILDREN = 10_000;

export async function startBroker(config: Config, opts: BrokerOptions = {}): Promise<Broker> {
  const log = opts.log ?? createLogger();
  const types = opts.deviceTypes ?? shippedTypes;
  const deviceType = (name: string | null) => types.find((t) => t.name === name);
  const dataDir = resolve(config.dataDir);

  // Stores first: nothing is accepted before they are open.
  const registry = openSqliteRegistry({ dataDir, onError: (err) => log.error({ err: err.message }, "last-seen write failed; retried with the next one") });
  const onDbError = (err: Error) => log.error({ err: err.message }, "telemetry database error");
  const spool = openSpool({ dataDir, maxBytes: config.tsdb.spoolMaxBytes, onError: onDbError });
  const store = config.tsdb.kind === "influx" ? createInfluxStore(config.tsdb.influx) : openSqliteStore({ dataDir, spoolFile: spoolFile(dataDir), onError: onDbError });
  const drainer = startDrainer({ spool, store, batchSize: config.tsdb.batchSize, flushMs: config.tsdb.flushMs, deadLetterFile: join(dataDir, "dead-letter.jsonl"), log });
  const ingest = createIngest({ registry, deviceType, spool, afterAppend: () => drainer.kick() });

  const tls = await loadTls({ domain: config.domain, dataDir, cert: config.xmpp.tls?.cert, key: config.xmpp.tls?.key });
  const hashPool = await startHashPool({ threads: config.auth.hashThreads, nice: config.auth.hashNice });
  if (!hashPool.niced) log.warn({ nice: config.auth.hashNice }, "password hashing threads could not lower their priority; a connect storm competes with connected sessions for the CPU");
  if (!hashPool.native) log.warn("native PBKDF2 not built (npm run build:native); password checks use OpenSSL's, about half as fast");
  const auth = createAuthenticator({ registry, domain: config.domain, iterations: config.auth.scramIterations, verifiedCacheSize: config.auth.verifiedCacheSize, hashPool });
  let metrics: Metrics | null = null;
  const limiter = createFailureLimiter({
    maxFailures: config.auth.maxFailures,
    maxAccountFailures: config.auth.maxAccountFailures,
    windowMs: config.auth.failureWindowMs,
    banMs: config.auth.banMs,
    onBan: (ban) => (metrics?.ban(ban.scope), log.warn({ scope: ban.scope, [ban.scope]: ban.key, failures: ban.failures, until: new Date(ban.until).toISOString() }, "login banned")),
  });
  // One limiter for every protocol; failures and refusals counted per protocol.
  const login = createLogin({ auth, limiter, events: { failure: (protocol) => metrics?.authFailure(protocol), refused: (protocol) => metrics?.authRefused(protocol) } });

  const { shape, serviceShape } = limitShapes(config);
  const xmpp = createXmppServer({
    options: {
      domain: config.domain,
      requireTls: config.xmpp.requireTls,
      maxStanzaBytes: config.xmpp.maxStanzaBytes,
      negotiationTimeoutMs: config.xmpp.negotiationTimeoutMs,
      serviceShape,
    },
    registry,
    auth,
    login,
    log,
  });
  const agent = createDeviceAgent({ router: xmpp.router });
  const devicesOnMqtt = mqttPresence({ router: xmpp.router, presence: xmpp.presence, agent });
  let publishCommand: (topic: string, payload: unknown) => Promise<void> = () => Promise.reject(new Error("MQTT is not running"));
  const bridges: Bridge[] = [];
  const bridgeFor = (device: string) => bridges.find((b) => b.serves(device));
  const dispatcher = createDispatcher({
    deliver: (device, command, payload) => {
      const bridge = bridgeFor(device);
      return bridge ? bridge.publishCommand(device, command, payload) : publishCommand(`devices/${device}/commands/${command}`, payload);
    },
    isOnline: (device) => devicesOnMqtt.isOnline(device) || bridgeFor(device) !== undefined,
  });
  devicesOnMqtt.onOffline((device) => dispatcher.offline(device));
  const commandOutcomes = new Map<string, number>();
  const commands = adhocModule({
    router: xmpp.router,
    registry,
    agent,
    disco: xmpp.disco,
    dispatcher,
    deviceType,
    defaultTimeoutMs: config.commands.timeoutMs,
    // Issue 5 §7: one JSON line per command, and a count per outcome.
    audit: (entry) => {
      commandOutcomes.set(entry.outcome, (commandOutcomes.get(entry.outcome) ?? 0) + 1);
      metrics?.command(entry.outcome, entry.latencyMs / 1000);
      log.info({ ...entry, latencyMs: Math.round(entry.latencyMs * 100) / 100 }, "command");
    },
    log,
  });
  pubsubModule({ router: xmpp.router, registry, ingest, disco: xmpp.disco });
  sensorDataModule({ router: xmpp.router, registry, agent, ingest, store, deviceType });
  controlModule({ router: xmpp.router, registry, agent, commands, deviceType });
  hostCommandsModule({ router: xmpp.router, disco: xmpp.disco });

  let mqttBroker: MqttBroker | null = null;
  let xmppListener: { connections: number } | null = null;
  metrics = createMetrics({ router: xmpp.router, ingest, drainer, spool, dispatcher, mqtt: () => mqttBroker, xmppConnections: () => xmppListener?.connections ?? 0, bridges: () => bridges.map((b) => b.state), logins: () => limiter.size, streamErrors: xmpp.streamErrors });

  const connections = connectionRateLimiter(config.limits.connectionsPerSecond, config.limits.connectionBurst);
  const admit = (address: string) => {
    const ok = connections.allow(address);
    if (!ok) log.warn({ address }, "connection rate exceeded; connection closed");
    return ok;
  };

  const listeners: Array<{ close(error: StreamError): Promise<void> }> = [];
  const closeStores = async () => {
    await drainer.stop(config.tsdb.shutdownFlushMs);
    await spool.close();
    await store.close();
    await hashPool.close();
    limiter.close();
    registry.close();
  };
  try {
    // Bridges to other MQTT brokers (issue 7): same ingest, presence and dispatch.
    for (const bridgeConfig of config.bridges) {
      const bridgePresence = mqttPresence({ router: xmpp.router, presence: xmpp.presence, agent, resource: bridgeConfig.name });
      bridgePresence.onOffline((device) => dispatcher.offline(device));
      bridges.push(
        startBridge(bridgeConfig, {
          registry,
          ingest,
          presence: bridgePresence,
          onReply: (device, payload) => dispatcher.reply(device, payload),
          provision: (device, type) =>
            addAccount(registry, { name: device, role: "device", type }, config.auth.scramIterations, types.map((t) => t.name)).then(
              (a) => (log.info({ bridge: bridgeConfig.name, device, type }, "device provisioned from a bridge"), registry.get(a.name)),
              (err: Error) => (log.info({ bridge: bridgeConfig.name, device, err: err.message }, "device not provisioned"), undefined),
            ),
          isDeviceType: (name) => deviceType(name) !== undefined,
          log,
        }),
      );
    }
    listeners.push({ close: () => Promise.all(bridges.map((b) => b.close())).then(() => {}) });
    bridgeDisco({ router: xmpp.router, disco: xmpp.disco, bridges });
    const mqtt = await startMqtt({
      options: mqttOptions(config, tls, admit),
      login,
      presence: devicesOnMqtt,
      telemetry: (device, payload, done) => ingest.ingestThen(device, payload, "mqtt", done),
      onReply: (device, payload) => dispatcher.reply(device, payload),
      log,
    });
    listeners.push({ close: () => mqtt.close() });
    publishCommand = (topic, payload) => mqtt.publish(topic, payload, 1);
    mqttBroker = mqtt;
    // MQTT subscribers see samples from every protocol; MQTT's own are forwarded by aedes.
    ingest.onSample((sample, source) => {
      if (source !== "mqtt") void mqtt.publish(deviceTopic(sample.device, "telemetry"), sampleJson(sample)).catch(() => {});
    });
    const mqttWs = mqttWebSocket(mqtt, config.mqtt.maxPacketBytes);

    const c2s = await listenTcp(
      {
        host: config.xmpp.host,
        port: config.xmpp.port,
        tls: tls.context,
        limits: { maxStanzaBytes: Math.min(config.xmpp.maxPreAuthStanzaBytes, config.xmpp.maxStanzaBytes), maxChildren: MAX_CHILDREN, maxDepth: config.xmpp.maxDepth },
        tlsHandshakeMs: config.limits.tlsHandshakeMs,
        shape,
        admit,
      },
      xmpp.openStream,
      log,
    );
    listeners.push(c2s);
    const xmppWs = xmppWebSocket(
      {
        maxStanzaBytes: config.xmpp.maxStanzaBytes,
        maxPreAuthStanzaBytes: Math.min(config.xmpp.maxPreAuthStanzaBytes, config.xmpp.maxStanzaBytes),
        maxChildren: MAX_CHILDREN,
        maxDepth: config.xmpp.maxDepth,
        shape,
        admit,
        isSecure: (req) => Boolean((req.socket as { encrypted?: boolean }).encrypted) || config.xmpp.websocketSecureFrom.includes(req.socket.remoteAddress ?? ""),
      },
      xmpp.openStream,
      log,
    );
    listeners.push(xmppWs);
    xmppListener = { get connections() { return c2s.connections + xmppWs.connections; } };
    // Ready while the store keeps up, or while the spool still has room for its backlog.
    const ready = () => {
      const backlog = { spooled: spool.depth, spoolBytes: spool.bytes, storeFailing: drainer.state.failing, lastError: drainer.state.lastError };
      const full = spool.bytes >= config.tsdb.spoolMaxBytes * 0.95;
      const down = bridges.filter((b) => b.required && !b.state.connected).map((b) => b.state.name);
      const bridgeStates = bridges.map((b) => ({ name: b.state.name, connected: b.state.connected, lastError: b.state.lastError }));
      if (full) return { ok: false, reason: "telemetry spool nearly full", ...backlog, bridges: bridgeStates };
      if (down.length) return { ok: false, reason: `required bridge down: ${down.join(", ")}`, ...backlog, bridges: bridgeStates };
      return { ok: true, ...backlog, bridges: bridgeStates };
    };
    const http = await startHttp({ host: config.http.host, port: config.http.port, log, ready, metrics: metrics.registry, consoleDir: CONSOLE_DIR, upgrades: { "/mqtt": mqttWs.upgrade, "/xmpp-websocket": xmppWs.upgrade } });
    listeners.push({ close: () => (mqttWs.close(), http.close()) });

    const ports = { xmpp: c2s.port, mqtt: mqtt.ports.mqtt, mqttTls: mqtt.ports.mqttTls, http: http.port };
    log.info({ ...ports, domain: config.domain, dataDir, tls: tls.source, store: store.kind, spooled: spool.depth }, "listening");

    let stopped = false;
    return {
      ports,
      registry,
      xmpp,
      mqtt,
      ingest,
      drainer,
      store,
      dispatcher,
      commands,
      commandOutcomes,
      async stop() {
        if (stopped) return;
        stopped = true;
        // In order: MQTT (devices' unavailable goes out), XMPP streams (TCP, WebSocket) end with
        // system-shutdown, then the spool is flushed to the store (what does not make
        // it in time stays on disk for the next start).
        for (const listener of listeners) await listener.close(new StreamError("system-shutdown"));
        await closeStores();
        log.info({ spooled: spool.depth }, "stopped");
      },
    };
  } catch (err) {
    for (const listener of listeners) await listener.close(new StreamError("system-shutdown"));
    await closeStores();
    throw err;
  }
}
