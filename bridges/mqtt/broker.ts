// The embedded MQTT broker (aedes 1.x, MQTT 3.1.1) as a device link: devices and
// services log in with their accounts, the ACL keeps each device to its own topics
// (topics.ts), telemetry goes to the ingest before its PUBACK, replies to the command
// dispatcher, and devices' connections become their presence. Plugged into aedes
// through its hooks; every touch of its internals is in aedes-adapter.ts. On a node of
// a cluster aedes runs on its own Redis engines (redis-adapter.ts, docs/mqtt.md).
import { randomUUID } from "node:crypto";
import type { Duplex } from "node:stream";
import type { IncomingMessage } from "node:http";
import { Aedes, type AedesOptions, type Client } from "aedes";
import type { Logger } from "../../src/log.js";
import type { Login } from "../../src/auth/login.js";
import { linkReporter, TAKEN_OVER, type DeviceLink } from "../../src/links/device-link.js";
import type { Metrics } from "../../src/metrics.js";
import { sampleJson } from "../../src/telemetry/sample.js";
import { clientById, emitterOf, hasClient, onClientElsewhere } from "./aedes-adapter.js";
import type { ClientStates } from "./clients.js";
import { mqttConnections } from "./connections.js";
import { GuardedConnection, type GuardVerdict } from "./guard.js";
import { mqttHooks } from "./hooks.js";
import { openMqttListeners, type MqttListeners } from "./listeners.js";
import { audience } from "./mqemitter-adapter.js";
import type { MqttOptions } from "./options.js";
import { memoryPersistence } from "./persistence-adapter.js";
import { openRedisEngines, type RedisEngines } from "./redis-adapter.js";
import { clusterAudience, type Subscribable } from "./cluster-audience.js";
import type { ClusterBus } from "../../src/cluster/bus.js";
import type { NodeWatch } from "../../src/cluster/nodes.js";
import { refusals as makeRefusals } from "./refusals.js";
import { telemetryPath } from "./telemetry-path.js";
import { commandTopic, telemetryTopic } from "./topics.js";

export interface MqttCounters {
  rejectedByVerdict: Record<GuardVerdict, number>;
  droppedPublishes: number;
  refusedSubscriptions: number;
  authFailures: number;
  /** Connections closed because they did not read what they were sent. */
  slowConsumers: number;
  /** Telemetry publishes taken by the telemetry path instead of aedes' path. */
  tappedPublishes: number;
}

export interface MqttLink extends DeviceLink {
  readonly aedes: Aedes;
  readonly counters: MqttCounters;
  /** The listeners' ports, once open. */
  readonly ports: MqttListeners["ports"];
  /** Opens the TCP and TLS listeners; on failure closes what it holds. */
  open(): Promise<MqttLink>;
  /** Takes a connection from another listener (the WebSocket endpoint). */
  accept(stream: Duplex & { remoteAddress?: string }, req?: IncomingMessage): void;
  /** Publishes as the broker (errors topics, commands, samples from other links). */
  publish(topic: string, payload: unknown, qos?: 0 | 1): Promise<void>;
  close(): Promise<void>;
}

export async function createMqttLink(deps: {
  options: MqttOptions;
  login: Login;
  admit: (address: string) => boolean;
  metrics: Metrics;
  log: Logger;
  /** On a node of a cluster: the other nodes, told of this node's MQTT subscriptions (cluster-audience.ts). */
  peers?: { bus: ClusterBus; watch: NodeWatch };
}): Promise<MqttLink> {
  const { options, log } = deps;
  const reporter = linkReporter("mqtt");
  const counters: MqttCounters = { rejectedByVerdict: { oversize: 0, malformed: 0, "bad-utf8": 0 }, droppedPublishes: 0, refusedSubscriptions: 0, authFailures: 0, slowConsumers: 0, tappedPublishes: 0 };
  const states: ClientStates = new WeakMap();
  const connections = mqttConnections(reporter.emit);
  const refusals = makeRefusals({ publish: (topic, payload) => publish(topic, payload), counters, log });
  const keepaliveExpired = new WeakSet<Client>();
  /** Connections closed by aedes because their client id connected on another node. */
  const takenOver = new WeakSet<Client>();
  let shuttingDown = false;
  let listeners: MqttListeners | null = null;

  // One node: aedes' in-memory persistence (with the shortcut) and emitter. A node of a
  // cluster: aedes' Redis engines, and an id of its own among the brokers sharing them.
  const { cluster } = options;
  const { peers } = deps;
  const share = peers && cluster ? (mq: Subscribable) => clusterAudience({ ...peers, mq, ackTimeoutMs: cluster.nodeTimeoutMs, log }) : undefined;
  const engines: RedisEngines | null = cluster ? await openRedisEngines(cluster.redisUrl, `switchboard-${cluster.nodeId}-mqtt`, log, share) : null;
  const local = engines ? null : memoryPersistence();
  let current: Aedes | null = null;
  let shared: Partial<AedesOptions> = { persistence: local };
  if (cluster && engines) {
    // Fresh per process start, as aedes' own default id is: aedes-persistence-redis keys
    // queued messages by broker id and a counter that starts again at 1, so a node
    // restarted under the same id would overwrite messages it queued before (and the
    // other nodes, hearing its heartbeat again, would never publish the wills of the
    // connections it held when it died).
    const id = `switchboard-${cluster.nodeId}-${randomUUID().slice(0, 8)}`;
    // Before aedes subscribes its own close of the same client id (aedes-adapter.ts).
    await onClientElsewhere(engines.mq, id, (clientId) => {
      const client = current && clientById(current, clientId);
      if (client && !client.closed) takenOver.add(client);
    });
    // aedes counts a broker dead after 3 heartbeats unheard and then publishes the wills
    // of its clients (checked every 4): on the cluster's heartbeat, a killed node's
    // wills go out within seconds, not minutes (aedes' default is 60 s).
    shared = { id, mq: engines.mq, persistence: engines.persistence, heartbeatInterval: cluster.heartbeatMs };
  }
  const aedes: Aedes = await Aedes.createBroker({
    ...shared,
    // aedes disconnects past its own level limit; the ACL refuses deeper topics first
    // (MAX_TOPIC_LEVELS), with a report and the connection kept.
    maxTopicLevels: 100,
    // Bounded per-client queues: a slow consumer is cut off, not buffered without end.
    queueLimit: 100,
    maxInflightInbound: 100,
    // A client that does not drain its queue (over outboundHighWaterBytes) in this
    // time is destroyed with "drain timeout" (counted by the guard).
    drainTimeout: options.slowConsumerTimeoutMs,
    // No global cap on deliveries in progress: past one, aedes' emitter queues messages
    // and, when a stuck subscriber goes away, works through the queue recursively, which
    // overflows the stack after a flood. In-flight work is bounded per connection instead
    // (the guard hands aedes a connection's next read only when the last one is done).
    concurrency: 0,
    ...mqttHooks({ login: deps.login, states, connections, reports: reporter.emit, refusals, counters, serviceShape: options.serviceShape, takesOver: (id) => hasClient(aedes, id), log }),
  }).catch(async (err: unknown) => {
    await engines?.close(Promise.resolve(), Promise.resolve());
    throw err;
  });
  current = aedes;
  // aedes has set the store up: it holds every stored subscription now.
  engines?.recount();
  /** aedes.close(), and on a node of a cluster the end of its Redis connections. */
  const closeBroker = () => {
    const clientsClosed = new Promise<void>((resolve) => aedes.once("closed", () => resolve()));
    const closed = new Promise<void>((resolve) => aedes.close(() => resolve()));
    return engines ? engines.close(clientsClosed, closed) : closed;
  };
  // On a node of a cluster the subscribers may also be on other nodes, or stored for a
  // persistent session anywhere.
  const here = audience(emitterOf(aedes), local ? local.holdsSubscriptions : engines!.holdsSubscriptions);
  const reaches = engines ? (topic: string) => here(topic) || engines.elsewhere(topic) : here;
  const tap = telemetryPath({ aedes, states, reports: reporter.emit, refusals, counters, reaches });

  function publish(topic: string, payload: unknown, qos: 0 | 1 = 0): Promise<void> {
    return new Promise((resolve, reject) =>
      aedes.publish({ cmd: "publish", topic, payload: Buffer.from(JSON.stringify(payload)), qos, retain: false, dup: false }, (err) => (err ? reject(err) : resolve())),
    );
  }

  aedes.on("client", (client) => {
    const account = states.get(client)?.account;
    if (account?.role === "device") connections.connected(account, client);
  });
  aedes.on("keepaliveTimeout", (client) => keepaliveExpired.add(client));
  aedes.on("clientDisconnect", (client) => {
    const account = states.get(client)?.account;
    if (account?.role !== "device") return;
    const status = shuttingDown ? "broker shutdown" : takenOver.has(client) ? TAKEN_OVER : keepaliveExpired.has(client) ? "keepalive timeout" : "disconnected";
    connections.disconnected(account, client, status);
  });
  aedes.on("clientError", (client, err) => log.debug({ clientId: client?.id, err: err.message }, "mqtt client error"));
  aedes.on("connectionError", (client, err) => log.debug({ clientId: client?.id, err: err.message }, "mqtt connection error"));

  const outbound = {
    highWaterBytes: options.outboundHighWaterBytes,
    onSlowConsumer: (conn: GuardedConnection) => {
      counters.slowConsumers++;
      log.warn({ protocol: "mqtt", address: conn.remoteAddress, queuedBytes: conn.writableLength + conn.socket.writableLength }, "slow consumer: client did not read what it was sent; connection closed");
    },
  };
  const rejected = (address: string | undefined) => (verdict: GuardVerdict, bytes?: number) => {
    counters.rejectedByVerdict[verdict]++;
    log.info({ protocol: "mqtt", address, verdict, bytes, limit: options.maxPacketBytes }, "packet refused; connection closed");
  };

  function accept(stream: Duplex & { remoteAddress?: string }, req?: IncomingMessage): void {
    if (!deps.admit(stream.remoteAddress ?? "unknown")) return void stream.destroy();
    const guarded = new GuardedConnection(stream, options.maxPacketBytes, rejected(stream.remoteAddress), options.shape, outbound, tap);
    guarded.on("error", () => {});
    aedes.handle(guarded, req);
  }

  const m = deps.metrics;
  const v = counters.rejectedByVerdict;
  m.connections("mqtt", { get connections() { return aedes.connectedClients; } });
  m.counter("switchboard_mqtt_packets_refused_total", "MQTT connections closed for a refused packet, by reason (oversize, malformed, bad-utf8)", () => Object.entries(v).map(([k, n]) => [[k], n] as const), ["reason"]);
  m.counter("switchboard_mqtt_publishes_dropped_total", "MQTT publishes dropped (ACL or invalid telemetry)", () => counters.droppedPublishes);
  m.counter("switchboard_mqtt_slow_consumers_total", "MQTT connections closed for not reading what they were sent (mqtt.slowConsumerTimeoutMs)", () => counters.slowConsumers);
  m.counter("switchboard_mqtt_telemetry_tapped_total", "MQTT telemetry publishes handled on the telemetry path, not aedes' (docs/mqtt.md)", () => counters.tappedPublishes);
  m.counter("switchboard_mqtt_subscriptions_refused_total", "MQTT subscription filters refused (SUBACK 0x80)", () => counters.refusedSubscriptions);

  const link: MqttLink = {
    name: "mqtt",
    protocol: "mqtt",
    resource: "mqtt",
    aedes,
    counters,
    reaches: (device) => connections.isOnline(device),
    deliver: (device, request) => publish(commandTopic(device, request.command), { id: request.id, params: request.params }, 1),
    disconnect: (device) => connections.close(device),
    accepted(sample, from) {
      // MQTT subscribers see samples from every link; MQTT's own are forwarded on their path.
      if (from === "mqtt") return;
      publish(telemetryTopic(sample.device), sampleJson(sample)).catch((err: Error) => log.warn({ device: sample.device, err: err.message }, "sample not forwarded to MQTT subscribers"));
    },
    listen: reporter.listen,
    get ports() {
      if (!listeners) throw new Error("the MQTT listeners are not open");
      return listeners.ports;
    },
    async open() {
      try {
        listeners = await openMqttListeners(options, accept, log);
      } catch (err) {
        // aedes' timers (and Redis connections) would otherwise keep a process that failed to start alive.
        await closeBroker();
        throw err;
      }
      return link;
    },
    accept,
    publish,
    async close() {
      shuttingDown = true;
      const servers = listeners?.close();
      // aedes.close() ends every client; each one's clientDisconnect reports it offline.
      await closeBroker();
      await servers;
    },
  };
  return link;
}
