// The broker, wired: the one composition root (docs/architecture.md). It builds the
// parts in order and connects them; what they do is in their own modules. Stores open
// first, then the core, then the device links, then the listeners: no port opens
// before what it feeds is ready.
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Config } from "./config.js";
import { createLogger, errorLogger, type Logger } from "./log.js";
import { lifecycle } from "./lifecycle.js";
import { createMetrics } from "./metrics.js";
import { coreMetrics } from "./core-metrics.js";
import { createReadiness, spoolReadiness } from "./http/readiness.js";
import { startHttp } from "./http/server.js";
import { connectionAdmission } from "./limits.js";
import { loadTls } from "./tls.js";
import { openRegistry } from "./registry/open.js";
import type { Registry } from "./registry/registry.js";
import { autoProvisioner } from "./provision.js";
import { createAuthenticator } from "./auth/credentials.js";
import { startHashPool } from "./auth/hash-pool.js";
import { createFailureLimiter } from "./auth/limiter.js";
import { shareFailures } from "./auth/shared-limiter.js";
import { createLogin } from "./auth/login.js";
import { openSpool } from "./telemetry/spool.js";
import { openTelemetryStore } from "./telemetry/open-store.js";
import type { TelemetryStore } from "./telemetry/store.js";
import { startDrainer, type Drainer } from "./telemetry/drainer.js";
import { createIngest, type Ingest } from "./telemetry/ingest.js";
import { linkedSessions } from "./links/linked-sessions.js";
import { createDispatcher, type Dispatcher } from "./commands/dispatch.js";
import { commandAudit } from "./commands/audit.js";
import { createXmppServer, type XmppServer } from "./xmpp/server.js";
import { c2sOptions, tcpOptions, webSocketOptions } from "./xmpp/options.js";
import { listenTcp } from "./xmpp/tcp.js";
import { xmppWebSocket } from "./xmpp/websocket.js";
import { openBus } from "./cluster/bus.js";
import { devicesOnline, watchNodes } from "./cluster/nodes.js";
import { announceNode, clusterSessionTable, syncSessions } from "./cluster/directory.js";
import { peerLink } from "./cluster/peer-link.js";
import { sharedSubscriptions } from "./cluster/subscriptions.js";
import { clusterMetrics, clusterReadiness } from "./cluster/health.js";
import { iqCaller } from "./xmpp/iq-caller.js";
import { xmppDeviceLink } from "./xmpp/device-link.js";
import { createDeviceAgent } from "./xmpp/modules/device-agent.js";
import { adhocModule, type CommandRunner } from "./xmpp/modules/adhoc.js";
import { pubsubModule } from "./xmpp/modules/pubsub.js";
import { sensorDataModule } from "./xmpp/modules/sensordata.js";
import { controlModule } from "./xmpp/modules/control.js";
import { hostCommandsModule } from "./xmpp/modules/host-commands.js";
import { deviceTypeLookup, deviceTypes as shippedTypes, type DeviceType } from "../devices/index.js";
import { createMqttLink, type MqttLink } from "../bridges/mqtt/broker.js";
import { mqttOptions } from "../bridges/mqtt/options.js";
import { mqttWebSocket } from "../bridges/mqtt/websocket.js";
import { startBridge } from "../bridges/remote/bridge.js";
import { bridgeDisco } from "../bridges/remote/disco.js";

export interface Broker {
  ports: { xmpp: number; mqtt: number; mqttTls: number | null; http: number };
  registry: Registry;
  xmpp: XmppServer;
  mqtt: MqttLink;
  ingest: Ingest;
  drainer: Drainer;
  store: TelemetryStore;
  dispatcher: Dispatcher;
  commands: CommandRunner;
  commandOutcomes: ReadonlyMap<string, number>;
  stop(): Promise<void>;
}

export interface BrokerOptions {
  log?: Logger;
  /** The device types; the shipped ones by default (tests add their own). */
  deviceTypes?: readonly DeviceType[];
}

/** The built operator console: dist/console, whether this file runs from src/ (tsx) or dist/src/. */
const CONSOLE_DIR = fileURLToPath(new URL(import.meta.url.includes("/dist/src/") ? "../console" : "../dist/console", import.meta.url));

export async function startBroker(config: Config, opts: BrokerOptions = {}): Promise<Broker> {
  const log = opts.log ?? createLogger();
  const types = opts.deviceTypes ?? shippedTypes;
  const deviceType = deviceTypeLookup(types);
  const dataDir = resolve(config.dataDir);
  const running = lifecycle(log);
  const node = config.cluster?.nodeId;
  // Per node in a cluster: every series carries the node's id.
  const metrics = createMetrics(node ? { node } : {});
  const readiness = createReadiness();
  const admit = connectionAdmission(config.limits, log);

  // Stores, and the cluster's Redis (docs/cluster.md)
  const bus = config.cluster ? await openBus({ url: config.cluster.redis.url, nodeId: config.cluster.nodeId, log }) : null;
  const registry = await openRegistry(config, { onError: errorLogger(log, "registry error (last-seen write, change feed); retried") });
  const spool = openSpool({ dataDir, maxBytes: config.tsdb.spoolMaxBytes, onError: errorLogger(log, "telemetry database error") });
  const store = openTelemetryStore(config.tsdb, dataDir, errorLogger(log, "telemetry database error"));
  const drainer = startDrainer({ spool, store, ...config.tsdb, deadLetterFile: join(dataDir, "dead-letter.jsonl"), log });
  readiness.add(spoolReadiness({ spool, drainer, maxBytes: config.tsdb.spoolMaxBytes }));
  const tls = await loadTls({ domain: config.domain, dataDir, cert: config.xmpp.tls?.cert, key: config.xmpp.tls?.key });

  // Logins
  const hashPool = await startHashPool({ threads: config.auth.hashThreads, nice: config.auth.hashNice, log });
  const auth = createAuthenticator({ registry, domain: config.domain, iterations: config.auth.scramIterations, verifiedCacheSize: config.auth.verifiedCacheSize, hashPool });
  const limits = { ...config.auth, windowMs: config.auth.failureWindowMs };
  const ownLimiter = createFailureLimiter({ ...limits, log });
  const limiter = config.cluster ? await shareFailures(ownLimiter, { url: config.cluster.redis.url, ...limits, log }) : ownLimiter;
  const login = createLogin({ auth, limiter });

  // The XMPP core; in a cluster its session table also holds the other nodes' sessions.
  const table = bus ? clusterSessionTable(bus) : undefined;
  const xmpp = createXmppServer({ options: c2sOptions(config), registry, auth, login, log, sessions: table });
  const { router, presence, disco } = xmpp;
  const agent = createDeviceAgent({ router });

  // Device links, then what consumes them
  // The other nodes (a cluster): which are alive; MQTT tells them of its subscriptions.
  const watch = bus && table && watchNodes({ bus, ...config.cluster!, counts: () => ({ sessions: table.size, devices: devicesOnline(table) }), onError: errorLogger(log, "cluster heartbeat failed; retried") });
  const mqtt = await createMqttLink({ options: mqttOptions(config, tls), login, admit, metrics, log, peers: bus && watch ? { bus, watch } : undefined });
  const provision = autoProvisioner({ registry, iterations: config.auth.scramIterations, types, log });
  const bridges = config.bridges.map((bridge) => startBridge(bridge, { registry, provision, metrics, readiness, log }));
  const xmppDevices = xmppDeviceLink({ router, presence, registry, iq: iqCaller(router), deviceType });
  const own = [mqtt, ...bridges, xmppDevices];
  // The other nodes, as one more link: commands to their devices, samples for their subscribers.
  const peer = bus && watch ? peerLink({ bus, watch, sessions: router.sessions, domain: config.domain, registry, links: own }) : null;
  const links = peer ? [...own, peer] : own;
  const ingest = createIngest({ registry, deviceType, spool, links, afterAppend: drainer.kick });
  peer?.onShared(ingest.shared);
  linkedSessions({ router, presence, agent, links });
  const dispatcher = createDispatcher({ links });
  const sync = bus && table && watch ? syncSessions({ bus, table, watch, router, presence, registry, log }) : null;

  // XMPP features
  const audit = commandAudit({ log, metrics });
  const commands = adhocModule({ router, registry, agent, disco, dispatcher, deviceType, defaultTimeoutMs: config.commands.timeoutMs, audit, log });
  pubsubModule({ router, registry, ingest, link: xmppDevices, disco, log, subscriptions: bus ? await sharedSubscriptions(bus) : undefined });
  sensorDataModule({ router, registry, agent, ingest, store, deviceType });
  controlModule({ router, registry, agent, commands, deviceType });
  hostCommandsModule({ router, disco });
  bridgeDisco({ router, disco, bridges });
  coreMetrics(metrics, { router, ingest, drainer, spool, dispatcher, logins: login.counters, limiter, streamErrors: xmpp.streamErrors });

  if (bus && watch && sync && peer) {
    clusterMetrics(metrics, { bus, watch, sync, peer });
    readiness.add(clusterReadiness(bus));
    // Known to the others before a port opens: heartbeat, then what a former process left is cleared, then their sessions read.
    await watch.tick();
    await announceNode(bus);
    await sync.catchUp();
  }

  // Listeners, in order; closed in the same order, then the stores (the node leaves the cluster last).
  for (const part of [drainer, spool, store, hashPool, limiter, registry, ...(watch && bus ? [watch, bus] : [])]) running.atEnd(part);
  for (const bridge of bridges) await running.open(bridge);
  await running.open(mqtt.open());
  const c2s = await running.open(listenTcp(tcpOptions(config, tls.context, admit), xmpp.openStream, log));
  const xmppWs = await running.open(xmppWebSocket(webSocketOptions(config, admit), xmpp.openStream, log));
  const mqttWs = await running.open(mqttWebSocket(mqtt, config.mqtt.maxPacketBytes));
  metrics.connections("xmpp", c2s);
  metrics.connections("xmpp", xmppWs);
  const upgrades = { "/mqtt": mqttWs.upgrade, "/xmpp-websocket": xmppWs.upgrade };
  const http = await running.open(startHttp({ ...config.http, log, ready: readiness.state, metrics: metrics.registry, consoleDir: CONSOLE_DIR, upgrades }));

  const ports = { xmpp: c2s.port, ...mqtt.ports, http: http.port };
  log.info({ ...(node ? { nodeId: node } : {}), ...ports, domain: config.domain, dataDir, tls: tls.source, store: store.kind, spooled: spool.depth }, "listening");
  return { ports, registry, xmpp, mqtt, ingest, drainer, store, dispatcher, commands, commandOutcomes: audit.outcomes, stop: running.stop };
}
