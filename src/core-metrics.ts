// The core's metrics (docs/operations.md, "Metrics"): sessions, routing, telemetry,
// the store, commands, logins and stream errors. Protocol edges and bridges register
// their own through the same Metrics.
import type { Router } from "./xmpp/router.js";
import type { Ingest } from "./telemetry/ingest.js";
import type { Drainer } from "./telemetry/drainer.js";
import type { Spool } from "./telemetry/spool.js";
import type { Dispatcher } from "./commands/dispatch.js";
import type { LoginCounters } from "./auth/login.js";
import type { FailureLimiter } from "./auth/limiter.js";
import { byLabel, type Metrics } from "./metrics.js";

export function coreMetrics(
  metrics: Metrics,
  deps: {
    router: Router;
    ingest: Ingest;
    drainer: Drainer;
    spool: Spool;
    dispatcher: Dispatcher;
    logins: LoginCounters;
    limiter: FailureLimiter;
    streamErrors: ReadonlyMap<string, number>;
  },
): void {
  const { router, ingest, drainer, spool, dispatcher, logins, limiter } = deps;

  metrics.gauge("switchboard_devices_online", "Devices with at least one available resource (XMPP, MQTT or a bridge)", () => {
    const online = new Set<string>();
    // This node's own sessions: in a cluster the table also holds other nodes'.
    for (const s of router.sessions.all()) if (s.node === undefined && s.account.role === "device" && s.presence) online.add(s.bare);
    return online.size;
  });
  metrics.gauge("switchboard_sessions", "Bound sessions (XMPP resources and devices on other links)", () => router.sessions.size);

  const routed = new Map<string, number>();
  for (const kind of ["message", "presence", "iq"] as const) router.events.on(`pre/${kind}`, () => void routed.set(kind, (routed.get(kind) ?? 0) + 1), 1000);
  metrics.counter("switchboard_stanzas_routed_total", "Stanzas routed from clients, by kind", () => byLabel(routed), ["kind"]);
  metrics.counter("switchboard_xmpp_stream_errors_total", "XMPP streams ended with a stream error, by condition (policy-violation, unsupported-encoding, ...)", () => byLabel(deps.streamErrors), ["condition"]);

  // Counted in plain maps and handed to prom-client at scrape time: its labelled
  // inc() hashes and validates the labels on every call.
  const accepted = new Map<string, number>();
  const rejected = new Map<string, { reason: string; source: string; n: number }>();
  // Samples other nodes of a cluster accepted have the source "peer": each node counts its own.
  ingest.onSample((_s, source) => void (source !== "peer" && accepted.set(source, (accepted.get(source) ?? 0) + 1)));
  ingest.onReject((reason, source) => {
    const key = `${reason}\n${source}`;
    const entry = rejected.get(key) ?? { reason, source, n: 0 };
    entry.n++;
    rejected.set(key, entry);
  });
  metrics.counter("switchboard_telemetry_accepted_total", "Samples accepted into the spool, by source", () => byLabel(accepted), ["source"]);
  metrics.counter("switchboard_telemetry_rejected_total", "Samples rejected, by reason and source", () => [...rejected.values()].map((e) => [[e.reason, e.source], e.n] as const), ["reason", "source"]);

  metrics.gauge("switchboard_store_backlog_samples", "Samples in the spool, not yet confirmed by the store", () => spool.depth);
  metrics.gauge("switchboard_store_backlog_bytes", "Approximate size of the spool's backlog", () => spool.bytes);
  metrics.gauge("switchboard_store_failing", "1 while the store's last write failed", () => (drainer.state.failing ? 1 : 0));
  const writeSeconds = metrics.histogram("switchboard_store_write_seconds", "Duration of successful store writes", [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]);
  let written = 0;
  drainer.onWrite((ms, points) => {
    writeSeconds(ms / 1000);
    written += points;
  });
  metrics.counter("switchboard_store_written_samples_total", "Samples confirmed by the store", () => written);
  metrics.counter("switchboard_store_write_failures_total", "Failed store writes (retried)", () => drainer.state.writeFailures);
  metrics.counter("switchboard_store_dead_letter_samples_total", "Samples the store refused, moved to the dead-letter file", () => drainer.state.deadLettered);

  metrics.gauge("switchboard_commands_pending", "Commands waiting for a device's reply", () => dispatcher.pending);
  const c = dispatcher.counters;
  metrics.counter(
    "switchboard_command_replies_ignored_total",
    "Device replies ignored, by reason",
    () => [[["unknown"], c.unknownReplies], [["late"], c.lateReplies], [["duplicate"], c.duplicateReplies], [["malformed"], c.malformedReplies]] as const,
    ["reason"],
  );

  metrics.counter("switchboard_auth_failures_total", "Failed logins by protocol", () => byLabel(logins.failures), ["protocol"]);
  metrics.counter("switchboard_auth_refused_banned_total", "Logins refused while their address or account was banned, by protocol", () => byLabel(logins.refused), ["protocol"]);
  metrics.counter("switchboard_auth_bans_total", "Failed-login bans started, by scope (address or account)", () => byLabel(limiter.bansStarted), ["scope"]);
  metrics.gauge("switchboard_auth_banned", "Addresses and accounts banned now, by scope", () => [[["address"], limiter.size.bannedAddresses], [["account"], limiter.size.bannedAccounts]] as const, ["scope"]);
  metrics.gauge("switchboard_auth_limiter_records", "Failure counts and bans the login limiter holds (capped)", () => limiter.size.records);
}
