// A bridge to another MQTT broker (docs/bridges.md) as a device link: Switchboard
// connects as a client (the `mqtt` package) and maps the remote topic layout onto its
// device model. Bridged telemetry goes to the same ingest, presence becomes the same
// device sessions, commands come from the same dispatcher as for local devices.
import mqtt, { type IClientOptions, type MqttClient, type Packet } from "mqtt";
import { generate as generatePacket } from "mqtt-packet";
import { readFileSync } from "node:fs";
import type { BridgeConfig } from "../../src/config.js";
import type { Logger } from "../../src/log.js";
import type { Account, Registry } from "../../src/registry/registry.js";
import type { IngestResult } from "../../src/telemetry/verdict.js";
import { linkReporter, type DeviceLink } from "../../src/links/device-link.js";
import { compileTemplate, type TopicTemplate } from "../../src/topic-templates.js";
import type { Metrics } from "../../src/metrics.js";
import type { Readiness } from "../../src/http/readiness.js";

export interface BridgeState {
  name: string;
  connected: boolean;
  lastError: string | null;
  messagesIn: number;
  messagesOut: number;
  reconnects: number;
  ignored: Record<"unknownDevice" | "invalid" | "badTopic" | "loop", number>;
}

export interface Bridge extends DeviceLink {
  readonly state: BridgeState;
  close(): Promise<void>;
}

export interface BridgeDeps {
  registry: Registry;
  /** Creates a device account of a known type (autoProvision), or gives undefined. */
  provision: (device: string, type: string, via: string) => Promise<Account | undefined>;
  metrics: Metrics;
  readiness: Readiness;
  log: Logger;
}

const MAX_BACKOFF_MS = 30_000;

export function startBridge(config: BridgeConfig, deps: BridgeDeps): Bridge {
  const { registry, log } = deps;
  const reporter = linkReporter(config.name);
  const state: BridgeState = { name: config.name, connected: false, lastError: null, messagesIn: 0, messagesOut: 0, reconnects: 0, ignored: { unknownDevice: 0, invalid: 0, badTopic: 0, loop: 0 } };
  const t = Object.fromEntries(Object.entries(config.topics).flatMap(([k, v]) => (v ? [[k, compileTemplate(v)]] : []))) as Partial<Record<keyof BridgeConfig["topics"], TopicTemplate>>;
  const outgoing = [t.commands, t.errors].filter((x): x is TopicTemplate => !!x);
  // The bridged devices online: a device's presence lasts while the link and its status last.
  const online = new Map<string, Account>();
  let backoff = 1000;
  let closing = false;

  function logChange(error: string | null): void {
    // Logged once per change of reason, not per retry (docs/bridges.md).
    if (error === state.lastError) return;
    state.lastError = error;
    if (error) log.warn({ bridge: config.name, err: error }, "bridge link down; retrying with backoff");
  }

  const options: IClientOptions = {
    clientId: config.clientId ?? `switchboard-${config.name}`,
    username: config.username,
    password: config.password,
    clean: false, // a persistent session, so what queued while the link was down arrives after
    protocolVersion: 4,
    reconnectPeriod: backoff,
    connectTimeout: 10_000,
    ...(config.tls
      ? {
          ca: config.tls.ca ? readFileSync(config.tls.ca) : undefined,
          cert: config.tls.cert ? readFileSync(config.tls.cert) : undefined,
          key: config.tls.key ? readFileSync(config.tls.key) : undefined,
          rejectUnauthorized: config.tls.rejectUnauthorized,
        }
      : {}),
  };
  const client: MqttClient = mqtt.connect(config.url, options);

  async function accountFor(device: string, type: string | undefined): Promise<Account | undefined> {
    const account = registry.get(device);
    if (account) return account.role === "device" ? account : undefined;
    const wanted = type ?? config.deviceType;
    if (!config.autoProvision || !wanted) return undefined;
    return deps.provision(device, wanted, config.name);
  }

  function goOffline(device: string, status: string): void {
    const account = online.get(device);
    if (!account) return;
    online.delete(device);
    reporter.emit.offline(account, status);
  }

  async function handle(topic: string, payload: Buffer): Promise<void> {
    state.messagesIn++;
    if (topic.includes("\uFFFD")) {
      state.ignored.badTopic++;
      return void log.info({ bridge: config.name, topic }, "bridged message with a topic that is not UTF-8; ignored");
    }
    // What Switchboard itself published is never taken back in as a device message.
    if (outgoing.some((o) => o.match(topic))) {
      state.ignored.loop++;
      return;
    }
    for (const kind of ["telemetry", "status", "replies"] as const) {
      const values = t[kind]?.match(topic);
      if (!values?.device) continue;
      const device = values.device.toLowerCase();
      const account = await accountFor(device, values.type);
      if (!account) {
        state.ignored.unknownDevice++;
        return void log.info({ bridge: config.name, device, topic }, "bridged message for an unknown device; ignored");
      }
      if (kind === "telemetry") return telemetry(device, payload);
      if (kind === "replies") return reporter.emit.reply(device, payload);
      const text = payload.toString().trim().toLowerCase();
      if (text === "online" && !online.has(device)) {
        online.set(device, account);
        reporter.emit.online(account);
      } else if (text === "offline" || text === "") goOffline(device, `offline on bridge ${config.name}`);
      return;
    }
  }

  async function telemetry(device: string, payload: Buffer): Promise<void> {
    // The remote broker gets its PUBACK only once the sample is spooled: while the
    // spool is full, wait rather than acknowledge a sample we could not keep.
    for (;;) {
      const result = await new Promise<IngestResult>((resolve, reject) => reporter.emit.telemetry(device, payload, (r, err) => (r ? resolve(r) : reject(err))));
      if (result.ok) return;
      if (!result.overloaded) {
        state.ignored.invalid++;
        log.info({ bridge: config.name, device, reason: result.reason, issues: result.issues }, "invalid bridged sample; not stored");
        if (t.errors)
          publish(t.errors.render({ device }), JSON.stringify({ error: result.reason, issues: result.issues }), 0).catch((err: Error) => logChange(`error report not published: ${err.message}`));
        return;
      }
      if (closing || !client.connected) throw new Error("spool full");
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  // A QoS 1 message is acknowledged only once its sample is spooled. mqtt.js
  // would send the PUBACK when handleMessage calls back, and takes the next packet
  // only then, so one sample per event-loop turn (and per spool commit) would get
  // through. Instead every message is handed on at once, and the PUBACKs are sent
  // by us, in arrival order (MQTT 3.1.1 §4.6), as their samples become durable.
  // Calling back with an error makes mqtt.js move on without a PUBACK of its own.
  let acks: Promise<void> = Promise.resolve();
  const DEFERRED = new Error("acknowledged once spooled");
  client.handleMessage = (packet: Packet, done: (error?: Error) => void) => {
    if (packet.cmd !== "publish") return done();
    const work = handle(packet.topic, packet.payload as Buffer);
    if (packet.qos === 0 || packet.messageId === undefined) {
      work.catch((err: Error) => log.warn({ bridge: config.name, err: err.message }, "bridged message failed"));
      return done();
    }
    const messageId = packet.messageId;
    const stream = client.stream;
    acks = acks
      .then(() => work)
      .then(
        () => void (stream.writable && stream.write(generatePacket({ cmd: "puback", messageId }))),
        (err: Error) => log.warn({ bridge: config.name, err: err.message }, "bridged message not acknowledged"),
      );
    done(DEFERRED);
  };

  client.on("connect", (connack) => {
    state.connected = true;
    backoff = 1000;
    client.options.reconnectPeriod = backoff;
    logChange(null);
    log.info({ bridge: config.name, url: config.url, sessionPresent: connack.sessionPresent }, "bridge connected");
    // Subscribing again also brings the retained status messages back.
    const filters = Object.fromEntries([t.telemetry, t.status, t.replies].filter((x): x is TopicTemplate => !!x).map((x) => [x.filter, { qos: config.qos }]));
    client.subscribe(filters, (err) => err && logChange(`subscribe failed: ${err.message}`));
  });
  client.on("close", () => {
    if (state.connected) {
      // The link is down, so every device of this bridge is unavailable, saying why.
      for (const device of [...online.keys()]) goOffline(device, `bridge ${config.name} disconnected`);
    }
    state.connected = false;
    if (closing) return;
    state.reconnects++;
    // Exponential backoff with jitter, read by mqtt.js when it schedules the next try.
    backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
    client.options.reconnectPeriod = Math.round(backoff * (0.5 + Math.random()));
  });
  client.on("error", (err) => logChange(err.message));
  client.on("offline", () => logChange(state.lastError ?? "connection lost"));

  function publish(topic: string, payload: string, qos: 0 | 1): Promise<void> {
    return new Promise((resolve, reject) =>
      client.publish(topic, payload, { qos }, (err) => {
        if (err) return reject(err);
        state.messagesOut++;
        resolve();
      }),
    );
  }

  deps.metrics.gauge("switchboard_bridge_connected", "1 while a bridge's link to its remote broker is up", () => [[[config.name], state.connected ? 1 : 0]], ["bridge"]);
  deps.metrics.gauge("switchboard_bridge_messages_in", "Messages received from a bridge's remote broker", () => [[[config.name], state.messagesIn]], ["bridge"]);
  deps.metrics.gauge("switchboard_bridge_messages_out", "Messages published to a bridge's remote broker", () => [[[config.name], state.messagesOut]], ["bridge"]);
  deps.metrics.gauge("switchboard_bridge_reconnects", "Times a bridge's link was lost", () => [[[config.name], state.reconnects]], ["bridge"]);
  // A required bridge that is down makes the broker not ready (the balancer drains it).
  deps.readiness.add(() => ({
    ok: state.connected || !config.required,
    reason: `required bridge down: ${config.name}`,
    details: { bridges: [{ name: config.name, connected: state.connected, lastError: state.lastError }] },
  }));

  return {
    name: config.name,
    protocol: "bridge",
    resource: config.name,
    state,
    reaches: (device) => online.has(device) && state.connected,
    deliver(device, request) {
      if (!t.commands) return Promise.reject(new Error(`bridge ${config.name} has no commands template`));
      return publish(t.commands.render({ device, command: request.command }), JSON.stringify({ id: request.id, params: request.params }), config.qos);
    },
    disconnect: (device) => goOffline(device, "closed by the broker"),
    listen: reporter.listen,
    async close() {
      closing = true;
      for (const device of [...online.keys()]) goOffline(device, "broker shutdown");
      await new Promise<void>((resolve) => client.end(false, {}, () => resolve()));
    },
  };
}
