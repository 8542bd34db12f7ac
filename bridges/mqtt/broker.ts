// The embedded MQTT 3.1.1 broker (aedes 1.x), plugged in through its hooks only:
// authentication against the registry, the topic ACL, presence, and a packet-size
// guard on every connection. Listeners: TCP, TLS (the XMPP certificate) and
// WebSocket (`/mqtt` on the HTTP port).
import net from "node:net";
import tls from "node:tls";
import type { Duplex } from "node:stream";
import type { IncomingMessage } from "node:http";
import { Aedes, type AuthenticateError, type Client, type PublishPacket } from "aedes";
import type { Logger } from "../../src/log.js";
import { banText, type Login } from "../../src/auth/login.js";
import type { Account } from "../../src/registry/registry.js";
import { GuardedConnection, WILDCARD_MARKS, type GuardVerdict, type InboundPublish } from "./guard.js";
import { listen } from "../../src/listen.js";
import { TLS_SETTINGS } from "../../src/tls.js";
import type { Shape } from "../../src/limits.js";
import { deviceTopic, publishDenied, subscribeAllowed } from "./acl.js";
import type { MqttPresence } from "./presence.js";
import { memoryPersistence } from "./persistence.js";
import { audience } from "./audience.js";
import { InOrder } from "./in-order.js";
import type { IngestResult, Ingested } from "../../src/telemetry/ingest.js";

/** The ingest pipeline as the MQTT edge sees it (Ingest.ingestThen). */
export type TelemetrySink = (device: string, payload: Buffer, done: Ingested) => void;

export interface MqttOptions {
  host: string;
  port: number;
  tlsPort: number | null;
  maxPacketBytes: number;
  /** Bytes queued towards one client above which publishers are held back. */
  outboundHighWaterBytes?: number;
  /** A client congested this long is disconnected. */
  slowConsumerTimeoutMs?: number;
  /** PEM certificate and key (the XMPP ones). */
  tls: { cert: string; key: string };
  shape?: Shape;
  /** Read rate for service accounts once authenticated (limits.service*). */
  serviceShape?: Shape;
  admit?: (address: string) => boolean;
  /** A TLS handshake not finished in this time closes the socket. */
  tlsHandshakeMs?: number;
}

export interface MqttCounters {
  /** Connections the guard closed for a packet, in all and by its verdict. */
  rejectedPackets: number;
  rejectedByVerdict: Record<GuardVerdict, number>;
  droppedPublishes: number;
  refusedSubscriptions: number;
  authFailures: number;
  /** Connections closed because they did not read what they were sent. */
  slowConsumers: number;
  /** Telemetry publishes taken by the tap (tapTelemetry) instead of aedes' path. */
  tappedPublishes: number;
}

export interface MqttBroker {
  readonly ports: { mqtt: number; mqttTls: number | null };
  readonly aedes: Aedes;
  readonly counters: MqttCounters;
  /** Takes a connection from another listener (the WebSocket endpoint). */
  accept(stream: Duplex & { remoteAddress?: string }, req?: IncomingMessage): void;
  /** Publishes as the broker (errors topics, later commands). */
  publish(topic: string, payload: unknown, qos?: 0 | 1): Promise<void>;
  close(): Promise<void>;
}

type Refusal = { error: string; issues: Array<{ path: string; message: string }> };

/** What the telemetry tap reads of an aedes 1.x client beyond its typed surface. */
interface AedesClientState {
  connackSent: boolean;
  version: number;
  /** Packets of the last read still being handled (lib/client.js, nextBatch). */
  _parsingBatch: number;
  _keepaliveInterval: number;
  _keepaliveTimer: NodeJS.Timeout | null;
}

type PublishAs = (packet: PublishPacket, client: Client, done: (err?: Error) => void) => void;

/** PUBACK (MQTT 3.1.1 §3.4): fixed header 0x40, remaining length 2, packet identifier. */
function pubAck(messageId: number): Buffer {
  const bytes = Buffer.allocUnsafe(4);
  bytes[0] = 0x40;
  bytes[1] = 0x02;
  bytes.writeUInt16BE(messageId, 2);
  return bytes;
}

function refusal(code: 2 | 4 | 5, message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode: code }) as AuthenticateError;
}


export async function startMqtt(deps: {
  options: MqttOptions;
  login: Login;
  presence: MqttPresence;
  telemetry: TelemetrySink;
  /** A device's message on its replies topic (command results). */
  onReply: (device: string, payload: Buffer) => void;
  log: Logger;
}): Promise<MqttBroker> {
  const { options, login, presence, telemetry, onReply, log } = deps;
  const accounts = new WeakMap<Client, Account>();
  /** Each authenticated client's publishes, answered in the order they came (in-order.ts). */
  const answers = new WeakMap<Client, InOrder>();
  /** A device client's own telemetry topic, made once per connection, not per publish. */
  const telemetryTopics = new WeakMap<Client, { name: string; bytes: Buffer }>();
  const keepaliveExpired = new WeakSet<Client>();
  const counters: MqttCounters = { rejectedPackets: 0, rejectedByVerdict: { oversize: 0, malformed: 0, "bad-utf8": 0 }, droppedPublishes: 0, refusedSubscriptions: 0, authFailures: 0, slowConsumers: 0, tappedPublishes: 0 };
  let shuttingDown = false;

  const addressOf = (client: Client) => (client.conn as { remoteAddress?: string }).remoteAddress ?? "unknown";

  const persistence = memoryPersistence();
  const aedes = await Aedes.createBroker({
    persistence,
    // aedes disconnects past its own level limit; the ACL refuses deeper topics first
    // (MAX_TOPIC_LEVELS), with a report and the connection kept.
    maxTopicLevels: 100,
    // Bounded per-client queues: a slow consumer is cut off, not buffered without end.
    queueLimit: 100,
    maxInflightInbound: 100,
    // A client that does not drain its queue (over outboundHighWaterBytes) in this
    // time is destroyed with "drain timeout" (counted by the guard).
    drainTimeout: options.slowConsumerTimeoutMs ?? 30_000,
    // No global cap on deliveries in progress. Past a cap, aedes' emitter (mqemitter)
    // queues messages and, when a stuck subscriber goes away, works through the queue
    // recursively: a few thousand queued messages overflow the stack and kill the
    // process (bare aedes does so after every QoS 0 flood in bench/mqtt). What is in
    // progress is bounded per connection instead: aedes reads a connection's next
    // batch (READ_BATCH_BYTES in guard.ts) only when the last one has been delivered.
    concurrency: 0,

    authenticate(client, username, password, done) {
      const address = addressOf(client);
      const fail = (code: 2 | 4 | 5, message: string) => {
        counters.authFailures++;
        log.info({ protocol: "mqtt", clientId: client.id, user: username, address, code }, "authentication failed");
        done(refusal(code, message), null);
      };
      if (!username || !password) return fail(4, "user name and password are required");
      login.password("mqtt", address, username, password.toString("utf8")).then((outcome) => {
        // MQTT 3.1.1 §3.2.2.3: 5 (not authorized) while banned, whatever the password;
        // not logged one by one (the ban was, once; /metrics counts the refusals).
        if (!outcome.ok && outcome.ban) return done(refusal(5, banText(outcome.ban)), null);
        if (!outcome.ok) return fail(4, "bad user name or password");
        const { account } = outcome;
        // MQTT 3.1.1 §3.1.3.1 lets the server refuse a client id: a device's is its own id.
        if (account.role === "device" && client.id !== account.name) return fail(2, `client id must be '${account.name}'`);
        if (account.role === "operator") return fail(5, "operators use XMPP");
        // The connection may have gone while the password was checked: aedes then drops
        // it without a clientDisconnect, so it must not be announced as a successor.
        if (client.closed) return done(refusal(5, "connection closed"), null);
        accounts.set(client, account);
        answers.set(client, new InOrder());
        // Services command fleets over one connection: their own, higher read rate.
        if (account.role === "service" && options.serviceShape && client.conn instanceof GuardedConnection) client.conn.reshape(options.serviceShape);
        if (account.role === "device") {
          const topic = deviceTopic(account.name, "telemetry");
          telemetryTopics.set(client, { name: topic, bytes: Buffer.from(topic) });
          presence.authenticated(account, client, Boolean((aedes as unknown as { clients: Record<string, Client> }).clients[client.id]));
        }
        done(null, true);
      }, () => fail(4, "authentication error"));
    },

    authorizePublish(client, packet, done) {
      const account = client && accounts.get(client);
      if (!client || !account) return done(null);
      const order = answers.get(client)!;
      const ticket = order.ticket();
      const answer = () => order.answer(ticket, () => done(null));
      // A device's own telemetry topic (exactly that string) is allowed: checked first,
      // it spares nearly every publish the general rules.
      if (packet.topic !== telemetryTopics.get(client)?.name) {
        const denied = publishDenied(account, packet.topic);
        if (denied) drop(client, account, packet, { error: denied, issues: [] });
        else if (account.role === "device") onReply(account.name, packet.payload as Buffer); // the only other topic a device may use
        return answer();
      }
      // Telemetry: validated and spooled before the PUBACK; only accepted samples are
      // forwarded. (Most telemetry takes tapTelemetry below instead, to the same end.)
      const settle = (refusal: Refusal | null) => {
        if (refusal) drop(client, account, packet, refusal);
        answer();
      };
      telemetry(account.name, packet.payload as Buffer, (result, err) => settle(result ? refusalOf(result) : ingestFailed(account.name, err)));
    },

    authorizeSubscribe(client, subscription, done) {
      const account = accounts.get(client);
      if (account && subscribeAllowed(account, subscription.topic)) return done(null, subscription);
      counters.refusedSubscriptions++;
      // A null subscription is answered with SUBACK 0x80 for this filter (MQTT 3.1.1 §3.9.3).
      done(null, null);
    },
  });

  const reaches = audience((aedes as unknown as { mq: unknown }).mq, persistence.holdsSubscriptions);

  /**
   * A refused publish is dropped without disconnecting the client: aedes only lets
   * `authorizePublish` refuse by disconnecting, so the topic is rewritten to a
   * `$`-topic no one can subscribe to (MQTT 3.1.1 §4.7.2) and the client still gets
   * its PUBACK. The device learns why on its errors topic.
   */
  function drop(client: Client, account: Account, packet: PublishPacket, why: Refusal): void {
    // Report the topic as the client sent it (the guard marked its wildcards).
    const topic = packet.topic.replace(/[\u0001\u0002]/g, (c) => WILDCARD_MARKS[c]!);
    packet.topic = `$dropped/${client.id}`;
    packet.retain = false;
    refused(client, account, topic, why);
  }

  function refused(client: Client, account: Account, topic: string, why: Refusal): void {
    counters.droppedPublishes++;
    log.info({ protocol: "mqtt", clientId: client.id, topic, reason: why.error }, "publish refused");
    // CONTRACT §4: one message per rejected publish on the device's errors topic.
    if (account.role === "device") void publish(deviceTopic(account.name, "errors"), { topic, ...why });
  }

  /** The ingest's answer as a refusal, or null for an accepted sample. */
  const refusalOf = (result: IngestResult): Refusal | null => (result.ok ? null : { error: result.reason, issues: result.issues });
  const ingestFailed = (device: string, err: unknown): Refusal => {
    log.error({ err, device }, "telemetry ingest failed");
    return { error: "internal error", issues: [] };
  };

  /**
   * A device's telemetry at QoS 0 or 1 (nearly all of the broker's traffic), taken
   * off aedes' path by the guard: parsed, authorised and acknowledged here, with the
   * same steps aedes would take (authorizePublish above, then PUBACK, then publish to
   * subscribers) and none of its per-packet streams, closures and timers. Anything
   * else, or any publish while aedes still has packets of this connection in hand,
   * takes aedes' path, so a connection's packets keep their order.
   */
  function tapTelemetry(conn: GuardedConnection, inbound: InboundPublish): boolean {
    const client = (conn as { client?: Client }).client as (Client & AedesClientState) | undefined;
    // MQTT 3.1.1 only (a v5 PUBLISH carries properties), once the CONNACK is out.
    if (!client || !client.connackSent || client.closed || client.version > 4 || client._parsingBatch !== 0) return false;
    const topic = telemetryTopics.get(client);
    const account = accounts.get(client);
    const order = answers.get(client);
    if (topic === undefined || account === undefined || order === undefined || inbound.bytes.compare(topic.bytes, 0, topic.bytes.length, inbound.topicStart, inbound.topicEnd) !== 0) return false;
    // §3.1.2.10: every control packet restarts the keep-alive (aedes' own handler does this).
    if (client._keepaliveInterval > 0) client._keepaliveTimer?.refresh();
    counters.tappedPublishes++;
    const { qos, messageId, payload } = inbound;
    const finish = (refusal: Refusal | null) => {
      if (refusal) refused(client, account, topic.name, refusal);
      const forward = () => {
        if (refusal || !reaches(topic.name)) return conn.settle();
        // With the publishing client, as aedes' own handler passes it (its typings omit the argument).
        (aedes.publish as unknown as PublishAs)({ cmd: "publish", topic: topic.name, payload, qos, retain: false, dup: false, messageId }, client, () => conn.settle());
      };
      // §4.3.2: the PUBACK, sent once the sample is durable (or refused).
      if (qos === 1) conn.sendRaw(pubAck(messageId), forward);
      else forward();
    };
    const ticket = order.ticket();
    telemetry(account.name, payload, (result, err) => {
      const refusal = result ? refusalOf(result) : ingestFailed(account.name, err);
      order.answer(ticket, () => finish(refusal));
    });
    return true;
  }

  function publish(topic: string, payload: unknown, qos: 0 | 1 = 0): Promise<void> {
    return new Promise((resolve, reject) =>
      aedes.publish({ cmd: "publish", topic, payload: Buffer.from(JSON.stringify(payload)), qos, retain: false, dup: false }, (err) => (err ? reject(err) : resolve())),
    );
  }

  aedes.on("client", (client) => {
    const account = accounts.get(client);
    if (account?.role === "device") presence.connected(account, client);
  });
  aedes.on("keepaliveTimeout", (client) => keepaliveExpired.add(client));
  aedes.on("clientDisconnect", (client) => {
    const account = accounts.get(client);
    if (account?.role !== "device") return;
    const status = shuttingDown ? "broker shutdown" : keepaliveExpired.has(client) ? "keepalive timeout" : "disconnected";
    presence.disconnected(account, client, status);
  });
  aedes.on("clientError", (client, err) => log.debug({ clientId: client?.id, err: err.message }, "mqtt client error"));
  aedes.on("connectionError", (client, err) => log.debug({ clientId: client?.id, err: err.message }, "mqtt connection error"));

  const outbound = {
    highWaterBytes: options.outboundHighWaterBytes ?? 1024 * 1024,
    onSlowConsumer: (conn: GuardedConnection) => {
      counters.slowConsumers++;
      log.warn({ protocol: "mqtt", address: conn.remoteAddress, queuedBytes: conn.writableLength + conn.socket.writableLength }, "slow consumer: client did not read what it was sent; connection closed");
    },
  };

  function accept(stream: Duplex & { remoteAddress?: string }, req?: IncomingMessage): void {
    if (options.admit && !options.admit(stream.remoteAddress ?? "unknown")) {
      stream.destroy();
      return;
    }
    const guarded = new GuardedConnection(
      stream,
      options.maxPacketBytes,
      (verdict, bytes) => {
        counters.rejectedPackets++;
        counters.rejectedByVerdict[verdict]++;
        log.info({ protocol: "mqtt", address: stream.remoteAddress, verdict, bytes, limit: options.maxPacketBytes }, "packet refused; connection closed");
      },
      options.shape,
      outbound,
      tapTelemetry,
    );
    guarded.on("error", () => {});
    aedes.handle(guarded, req);
  }

  // TCP_NODELAY, as on the XMPP side (and EMQX's default): with Nagle's algorithm a
  // command published while a previous packet is unacknowledged waits for the
  // client's delayed ACK, up to 40 ms on Linux, which dominated command round trips.
  const tcp = net.createServer({ noDelay: true }, (socket) => accept(socket));
  // handshakeTimeout: a socket that sends no ClientHello (or stalls mid-handshake) is
  // closed, not held open with its file descriptor (Node's default waits 120 s).
  const secure =
    options.tlsPort === null
      ? null
      : tls.createServer({ cert: options.tls.cert, key: options.tls.key, ...TLS_SETTINGS, handshakeTimeout: options.tlsHandshakeMs ?? 10_000, noDelay: true }, (socket) => accept(socket));
  // With a listener here Node leaves the socket open (the handshake timeout included): closed here.
  secure?.on("tlsClientError", (err, socket) => {
    log.debug({ err: err.message }, "mqtt TLS handshake failed");
    socket.destroy();
  });
  const mqttPort = await listen(tcp, options.port, options.host);
  const tlsPort = secure ? await listen(secure, options.tlsPort!, options.host) : null;

  return {
    ports: { mqtt: mqttPort, mqttTls: tlsPort },
    aedes,
    counters,
    accept,
    publish,
    async close() {
      shuttingDown = true;
      const closed = (s: net.Server | null) => (s ? new Promise<void>((resolve) => s.close(() => resolve())) : Promise.resolve());
      const servers = Promise.all([closed(tcp), closed(secure)]);
      // aedes.close() ends every client, each one's clientDisconnect sends its unavailable.
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await servers;
    },
  };
}
