// Prometheus metrics (CONTRACT §7) through prom-client, named switchboard_* with
// units in the names. Counters move on events; gauges are read from the parts at
// scrape time, so a scrape costs nothing between scrapes.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Router } from "./xmpp/router.js";
import type { Ingest } from "./telemetry/ingest.js";
import type { Drainer } from "./telemetry/drainer.js";
import type { Spool } from "./telemetry/spool.js";
import type { Dispatcher } from "./commands/dispatch.js";
import type { MqttBroker } from "../bridges/mqtt/broker.js";

export interface Metrics {
  readonly registry: Registry;
  /** One executed command (the audit hook). */
  command(outcome: string, seconds: number): void;
  /** One failed password check. */
  authFailure(protocol: "xmpp" | "mqtt"): void;
  /** One login refused by a ban, before any password check. */
  authRefused(protocol: "xmpp" | "mqtt"): void;
  /** One ban started. */
  ban(scope: "address" | "account"): void;
}

export function createMetrics(deps: {
  router: Router;
  ingest: Ingest;
  drainer: Drainer;
  spool: Spool;
  dispatcher: Dispatcher;
  mqtt: () => MqttBroker | null;
  xmppConnections: () => number;
  bridges?: () => Array<{ name: string; connected: boolean; messagesIn: number; messagesOut: number; reconnects: number }>;
  /** XMPP stream errors sent, by condition. */
  streamErrors?: ReadonlyMap<string, number>;
  /** The failed-login limiter's records and bans in force. */
  logins?: () => { records: number; bannedAddresses: number; bannedAccounts: number };
}): Metrics {
  const { router, ingest, drainer, spool, dispatcher } = deps;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "switchboard_" });
  const registers = [registry];

  new Gauge({
    name: "switchboard_connections",
    help: "Open client connections by protocol",
    labelNames: ["protocol"],
    registers,
    collect() {
      this.set({ protocol: "xmpp" }, deps.xmppConnections());
      this.set({ protocol: "mqtt" }, deps.mqtt()?.aedes.connectedClients ?? 0);
    },
  });
  new Gauge({
    name: "switchboard_devices_online",
    help: "Devices with at least one available resource (XMPP or MQTT)",
    registers,
    collect() {
      const online = new Set<string>();
      for (const s of router.sessions.all()) if (s.account.role === "device" && s.presence) online.add(s.bare);
      this.set(online.size);
    },
  });
  new Gauge({ name: "switchboard_sessions", help: "Bound sessions (XMPP resources and MQTT devices)", registers, collect() { this.set(router.sessions.size); } });

  const routed = new Counter({ name: "switchboard_stanzas_routed_total", help: "Stanzas routed from clients, by kind", labelNames: ["kind"], registers });
  for (const kind of ["message", "presence", "iq"] as const) {
    const child = routed.labels(kind);
    router.events.on(`pre/${kind}`, () => void child.inc(), 1000);
  }

  // Counted per sample in a plain map and handed to prom-client at scrape time:
  // its labelled inc() hashes and validates the labels on every call.
  const acceptedBySource = new Map<string, number>();
  new Counter({
    name: "switchboard_telemetry_accepted_total", help: "Samples accepted into the spool, by source", labelNames: ["source"], registers,
    collect() {
      this.reset();
      for (const [source, n] of acceptedBySource) this.inc({ source }, n);
    },
  });
  const rejected = new Counter({ name: "switchboard_telemetry_rejected_total", help: "Samples rejected, by reason and source", labelNames: ["reason", "source"], registers });
  ingest.onSample((_s, source) => void acceptedBySource.set(source, (acceptedBySource.get(source) ?? 0) + 1));
  ingest.onReject((reason, source) => rejected.labels(reason, source).inc());

  new Gauge({ name: "switchboard_store_backlog_samples", help: "Samples in the spool, not yet confirmed by the store", registers, collect() { this.set(spool.depth); } });
  new Gauge({ name: "switchboard_store_backlog_bytes", help: "Approximate size of the spool's backlog", registers, collect() { this.set(spool.bytes); } });
  new Gauge({ name: "switchboard_store_failing", help: "1 while the store's last write failed", registers, collect() { this.set(drainer.state.failing ? 1 : 0); } });
  const writeSeconds = new Histogram({ name: "switchboard_store_write_seconds", help: "Duration of successful store writes", buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers });
  const written = new Counter({ name: "switchboard_store_written_samples_total", help: "Samples confirmed by the store", registers });
  drainer.onWrite((ms, points) => {
    writeSeconds.observe(ms / 1000);
    written.inc(points);
  });
  // Counters kept by the parts themselves, exported as they stand at scrape time. The
  // gauge below is registered first, so its collect() refreshes them before they are read.
  const mirrored: Array<() => void> = [];
  new Gauge({
    name: "switchboard_commands_pending",
    help: "Commands waiting for a device's reply",
    registers,
    collect() {
      this.set(dispatcher.pending);
      for (const update of mirrored) update();
    },
  });
  const mirror = (name: string, help: string, reads: Record<string, () => number>, label?: string) => {
    const counter = new Counter({ name, help, labelNames: label ? [label] : [], registers });
    for (const [value, read] of Object.entries(reads)) {
      const child = label ? counter.labels(value) : counter;
      let last = 0;
      mirrored.push(() => {
        const now = read();
        if (now > last) child.inc(now - last);
        last = now;
      });
    }
  };
  const streamErrors = new Counter({ name: "switchboard_xmpp_stream_errors_total", help: "XMPP streams ended with a stream error, by condition (policy-violation, unsupported-encoding, ...)", labelNames: ["condition"], registers });
  const sentStreamErrors = new Map<string, number>();
  mirrored.push(() => {
    for (const [condition, n] of deps.streamErrors ?? []) {
      const last = sentStreamErrors.get(condition) ?? 0;
      if (n > last) streamErrors.labels(condition).inc(n - last);
      sentStreamErrors.set(condition, n);
    }
  });
  mirror("switchboard_store_write_failures_total", "Failed store writes (retried)", { all: () => drainer.state.writeFailures });
  mirror("switchboard_store_dead_letter_samples_total", "Samples the store refused, moved to the dead-letter file", { all: () => drainer.state.deadLettered });
  mirror(
    "switchboard_mqtt_packets_refused_total",
    "MQTT connections closed for a refused packet, by reason (oversize, malformed, bad-utf8)",
    {
      oversize: () => deps.mqtt()?.counters.rejectedByVerdict.oversize ?? 0,
      malformed: () => deps.mqtt()?.counters.rejectedByVerdict.malformed ?? 0,
      "bad-utf8": () => deps.mqtt()?.counters.rejectedByVerdict["bad-utf8"] ?? 0,
    },
    "reason",
  );
  mirror("switchboard_mqtt_publishes_dropped_total", "MQTT publishes dropped (ACL or invalid telemetry)", { all: () => deps.mqtt()?.counters.droppedPublishes ?? 0 });
  mirror("switchboard_mqtt_slow_consumers_total", "MQTT connections closed for not reading what they were sent (mqtt.slowConsumerTimeoutMs)", { all: () => deps.mqtt()?.counters.slowConsumers ?? 0 });
  mirror("switchboard_mqtt_telemetry_tapped_total", "MQTT telemetry publishes handled on the telemetry path, not aedes' (docs/mqtt.md)", { all: () => deps.mqtt()?.counters.tappedPublishes ?? 0 });
  mirror("switchboard_mqtt_subscriptions_refused_total", "MQTT subscription filters refused (SUBACK 0x80)", { all: () => deps.mqtt()?.counters.refusedSubscriptions ?? 0 });
  mirror(
    "switchboard_command_replies_ignored_total",
    "Device replies ignored, by reason",
    { unknown: () => dispatcher.counters.unknownReplies, late: () => dispatcher.counters.lateReplies, duplicate: () => dispatcher.counters.duplicateReplies, malformed: () => dispatcher.counters.malformedReplies },
    "reason",
  );
  new Gauge({
    name: "switchboard_bridge_connected",
    help: "1 while a bridge's link to its remote broker is up",
    labelNames: ["bridge"],
    registers,
    collect() {
      for (const b of deps.bridges?.() ?? []) this.set({ bridge: b.name }, b.connected ? 1 : 0);
    },
  });
  for (const [metric, key, help] of [
    ["switchboard_bridge_messages_in", "messagesIn", "Messages received from a bridge's remote broker"],
    ["switchboard_bridge_messages_out", "messagesOut", "Messages published to a bridge's remote broker"],
    ["switchboard_bridge_reconnects", "reconnects", "Times a bridge's link was lost"],
  ] as const)
    new Gauge({
      name: metric,
      help,
      labelNames: ["bridge"],
      registers,
      collect() {
        for (const b of deps.bridges?.() ?? []) this.set({ bridge: b.name }, b[key]);
      },
    });

  const commands = new Counter({ name: "switchboard_commands_total", help: "Commands by outcome", labelNames: ["outcome"], registers });
  const commandSeconds = new Histogram({ name: "switchboard_command_seconds", help: "Command round trip through the broker", labelNames: ["outcome"], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30], registers });
  const authFailures = new Counter({ name: "switchboard_auth_failures_total", help: "Failed logins by protocol", labelNames: ["protocol"], registers });
  const authRefused = new Counter({ name: "switchboard_auth_refused_banned_total", help: "Logins refused while their address or account was banned, by protocol", labelNames: ["protocol"], registers });
  const bans = new Counter({ name: "switchboard_auth_bans_total", help: "Failed-login bans started, by scope (address or account)", labelNames: ["scope"], registers });
  new Gauge({
    name: "switchboard_auth_banned",
    help: "Addresses and accounts banned now, by scope",
    labelNames: ["scope"],
    registers,
    collect() {
      const size = deps.logins?.();
      this.set({ scope: "address" }, size?.bannedAddresses ?? 0);
      this.set({ scope: "account" }, size?.bannedAccounts ?? 0);
    },
  });
  new Gauge({ name: "switchboard_auth_limiter_records", help: "Failure counts and bans the login limiter holds (capped)", registers, collect() { this.set(deps.logins?.().records ?? 0); } });

  return {
    registry,
    command(outcome, seconds) {
      commands.labels(outcome).inc();
      commandSeconds.labels(outcome).observe(seconds);
    },
    authFailure: (protocol) => authFailures.labels(protocol).inc(),
    authRefused: (protocol) => authRefused.labels(protocol).inc(),
    ban: (scope) => bans.labels(scope).inc(),
  };
}
