// A bridge to another MQTT broker (issue 7): Switchboard connects as a client (the
// `mqtt` package) and maps the remote topic layout onto its device model. Bridged
// telemetry goes through the same ingest pipeline, presence through the same proxied
// sessions, commands through the same dispatcher as local devices.
import mqtt, { type IClientOptions, type MqttClient, type Packet } from "mqtt";
import { generate as generatePacket } from "mqtt-packet";
import { readFileSync } from "node:fs";
import type { BridgeConfig } from "../../src/config.js";
import type { Logger } from "../../src/log.js";
import type { Account, Registry } from "../../src/registry/registry.js";
import type { Ingest } from "../../src/telemetry/ingest.js";
import type { MqttPresence } from "../mqtt/presence.js";
import { compileTemplate, type TopicTemplate } from "./templates.js";

export interface BridgeState {
  name: string;
  connected: boolean;
  lastError: string | null;
  messagesIn: number;
  messagesOut: number;
  reconnects: number;
  ignored: Record<"unknownDevice" | "invalid" | "badTopic" | "loop", number>;
}

export interface Bridge {
  readonly state: BridgeState;
  readonly required: boolean;
  /** True when this bridge currently speaks for the device. */
  serves(device: string): boolean;
  publishCommand(device: string, command: string, payload: unknown): Promise<void>;
  close(): Promise<void>;
}

export interface BridgeDeps {
  registry: Registry;
  ingest: Ingest;
  presence: MqttPresence;
  /** A device's reply to a command (the dispatcher). */
  onReply: (device: string, payload: Buffer) => void;
  /** Creates a device account (autoProvision). */
  provision: (device: string, type: string) => Promise<Account | undefined>;
  isDeviceType: (name: string) => boolean;
  log: Logger;
}

const MAX_BACKOFF_MS = 30_000;

export function startBridge(config: BridgeConfig, deps: BridgeDeps): Bridge {
  const { registry, ingest, presence, log } = deps;
  const state: BridgeState = { name: config.name, connected: false, lastError: null, messagesIn: 0, messagesOut: 0, reconnects: 0, ignored: { unknownDevice: 0, invalid: 0, badTopic: 0, loop: 0 } };
  const t = Object.fromEntries(Object.entries(config.topics).flatMap(([k, v]) => (v ? [[k, compileTemplate(v)]] : []))) as Partial<Record<keyof BridgeConfig["topics"], TopicTemplate>>;
  const outgoing = [t.commands, t.errors].filter((x): x is TopicTemplate => !!x);
  // A token per bridged device: its presence lasts while the link and its status last.
  const online = new Map<string, { close(): void }>();
  let backoff = 1000;
  let closing = false;

  function logChange(error: string | null): void {
    // Logged once per change of reason, not per retry (issue 7's bad-input table).
    if (error === state.lastError) return;
    state.lastError = error;
    if (error) log.warn({ bridge: config.name, err: error }, "bridge link down; retrying with backoff");
  }

  const options: IClientOptions = {
    clientId: config.clientId ?? `switchboard-${config.name}`,
    username: config.username,
    password: config.password,
    clean: false, // §5: a persistent session, so what queued while the link was down arrives after
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
    if (!config.autoProvision || !wanted || !deps.isDeviceType(wanted)) return undefined;
    return deps.provision(device, wanted);
  }

  function goOffline(device: string, status: string): void {
    const token = online.get(device);
    if (!token) return;
    online.delete(device);
    const account = registry.get(device);
    if (account) presence.disconnected(account, token, status);
  }

  async function handle(topic: string, payload: Buffer): Promise<void> {
    state.messagesIn++;
    if (topic.includes("\uFFFD")) {
      state.ignored.badTopic++;
      return void log.info({ bridge: config.name, topic }, "bridged message with a topic that is not UTF-8; ignored");
    }
    // §6: what Switchboard itself published is never taken back in as a device message.
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
      if (kind === "replies") return deps.onReply(device, payload);
      const text = payload.toString().trim().toLowerCase();
      if (text === "online" && !online.has(device)) {
        const token = { close: () => goOffline(device, "closed by the broker") };
        online.set(device, token);
        presence.connected(account, token);
      } else if (text === "offline" || text === "") goOffline(device, `offline on bridge ${config.name}`);
      return;
    }
  }

  async function telemetry(device: string, payload: Buffer): Promise<void> {
    // The remote broker gets its PUBACK only once the sample is spooled (§5): while the
    // spool is full, wait rather than acknowledge a sample we could not keep.
    for (;;) {
      const result = await ingest.ingest(device, payload, "bridge");
      if (result.ok) return;
      if (!result.overloaded) {
        state.ignored.invalid++;
        log.info({ bridge: config.name, device, reason: result.reason, issues: result.issues }, "invalid bridged sample; not stored");
        if (t.errors) void publish(t.errors.render({ device }), JSON.stringify({ error: result.reason, issues: result.issues }), 0);
        return;
      }
      if (closing || !client.connected) throw new Error("spool full");
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  // §5: a QoS 1 message is acknowledged only once its sample is spooled. mqtt.js
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
    // Subscribing again also brings the retained status messages back (§3).
    const filters = Object.fromEntries([t.telemetry, t.status, t.replies].filter((x): x is TopicTemplate => !!x).map((x) => [x.filter, { qos: config.qos }]));
    client.subscribe(filters, (err) => err && logChange(`subscribe failed: ${err.message}`));
  });
  client.on("close", () => {
    if (state.connected) {
      // §3: the link is down, so every device of this bridge is unavailable, saying why.
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

  return {
    state,
    required: config.required,
    serves: (device) => online.has(device) && state.connected,
    publishCommand(device, command, payload) {
      if (!t.commands) return Promise.reject(new Error(`bridge ${config.name} has no commands template`));
      return publish(t.commands.render({ device, command }), JSON.stringify(payload), config.qos);
    },
    async close() {
      closing = true;
      for (const device of [...online.keys()]) goOffline(device, "broker shutdown");
      await new Promise<void>((resolve) => client.end(false, {}, () => resolve()));
    },
  };
}
