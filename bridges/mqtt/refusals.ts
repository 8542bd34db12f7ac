// A publish the broker refuses (a forbidden topic, an invalid sample): dropped,
// delivered to no one, counted, and reported to a device on its own errors topic,
// one message per refused publish (docs/mqtt.md, "Errors").
import type { Client, PublishPacket } from "aedes";
import type { Logger } from "../../src/log.js";
import type { Account } from "../../src/registry/registry.js";
import type { IngestResult } from "../../src/telemetry/verdict.js";
import type { Issue } from "../../src/telemetry/validate.js";
import { WILDCARD_MARKS } from "./framing.js";
import { errorsTopic } from "./topics.js";

export type Refusal = { error: string; issues: Issue[] };

export interface Refusals {
  /**
   * Refuses a publish on aedes' path. aedes only lets `authorizePublish` refuse by
   * disconnecting, so the topic is rewritten to a `$`-topic no one can subscribe to
   * (MQTT 3.1.1 §4.7.2) and the client still gets its PUBACK.
   */
  drop(client: Client, account: Account, packet: PublishPacket, why: Refusal): void;
  /** Counts, logs and reports a refused publish on `topic`. */
  refused(client: Client, account: Account, topic: string, why: Refusal): void;
  /** The ingest's answer as a refusal, or null for an accepted sample. */
  of(result: IngestResult | null, device: string, err?: unknown): Refusal | null;
}

export function refusals(deps: { publish: (topic: string, payload: unknown) => Promise<void>; counters: { droppedPublishes: number }; log: Logger }): Refusals {
  const { publish, counters, log } = deps;

  function refused(client: Client, account: Account, topic: string, why: Refusal): void {
    counters.droppedPublishes++;
    log.info({ protocol: "mqtt", clientId: client.id, topic, reason: why.error }, "publish refused");
    if (account.role === "device")
      publish(errorsTopic(account.name), { topic, ...why }).catch((err: Error) => log.warn({ device: account.name, err: err.message }, "error report not published"));
  }

  return {
    refused,
    drop(client, account, packet, why) {
      // Report the topic as the client sent it (the guard marked its wildcards).
      const topic = packet.topic.replace(/[\u0001\u0002]/g, (c) => WILDCARD_MARKS[c]!);
      packet.topic = `$dropped/${client.id}`;
      packet.retain = false;
      refused(client, account, topic, why);
    },
    of(result, device, err) {
      if (result) return result.ok ? null : { error: result.reason, issues: result.issues };
      log.error({ err, device }, "telemetry ingest failed");
      return { error: "internal error", issues: [] };
    },
  };
}
