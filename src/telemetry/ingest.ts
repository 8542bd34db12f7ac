// One ingest pipeline for every link (docs/telemetry.md), as named steps in order:
// parse and validate against the sender's type → stamp time and point identity →
// spool (durable) → remember as the device's last sample → fan out to listeners and
// to every link's subscribers. A sample from MQTT, a bridge or XMPP takes exactly the
// same path.
import type { Registry } from "../registry/registry.js";
import type { DeviceType } from "../../devices/index.js";
import type { Spool } from "./spool.js";
import { SpoolFullError } from "./spool.js";
import type { SpooledSample } from "./sample.js";
import { validateSample, type Issue } from "./validate.js";
import { createPointClock } from "./point-clock.js";
import type { IngestResult, Ingested } from "./verdict.js";
import type { DeviceLink, Protocol } from "../links/device-link.js";

export type { IngestResult, Ingested } from "./verdict.js";
export type IngestSource = Protocol;

export interface IngestCounters {
  accepted: number;
  rejected: Map<string, number>;
}

export interface Ingest {
  ingest(device: string, payload: Buffer | string | unknown, source: IngestSource): Promise<IngestResult>;
  /**
   * ingest() with a callback: MQTT telemetry's hot path, without a promise per step.
   * A refused sample is answered synchronously, an accepted one once it is durable.
   */
  ingestThen(device: string, payload: Buffer | string | unknown, source: IngestSource, done: Ingested): void;
  /** Live fan-out: called once per accepted sample, after it is durable. */
  onSample(listener: (sample: SpooledSample, source: IngestSource) => void): void;
  /**
   * A sample another node of a cluster accepted: to this node's listeners (XMPP
   * pubsub), as from the "peer" link, and last samples. Not to the links: their
   * subscribers had it from that node.
   */
  shared(sample: SpooledSample): void;
  /** Observes every rejection (metrics). */
  onReject(listener: (reason: string, source: IngestSource) => void): void;
  lastSample(device: string): SpooledSample | undefined;
  readonly counters: IngestCounters;
}

export function createIngest(deps: {
  registry: Registry;
  deviceType: (name: string | null) => DeviceType | undefined;
  spool: Spool;
  /** Every link: the ingest takes their telemetry and fans accepted samples out to them. */
  links: readonly DeviceLink[];
  afterAppend?: () => void;
  now?: () => number;
}): Ingest {
  const { registry, deviceType, spool, links, afterAppend, now = Date.now } = deps;
  const listeners: Array<(sample: SpooledSample, source: IngestSource) => void> = [];
  const rejectListeners: Array<(reason: string, source: IngestSource) => void> = [];
  const last = new Map<string, SpooledSample>();
  const points = createPointClock();
  const counters: IngestCounters = { accepted: 0, rejected: new Map() };

  function reject(source: IngestSource, reason: string, issues: Issue[], countAs = reason, overloaded = false): IngestResult {
    // Counted by reason, without the path: bounded label cardinality for metrics.
    const key = countAs.startsWith("invalid ") ? "schema" : countAs;
    counters.rejected.set(key, (counters.rejected.get(key) ?? 0) + 1);
    for (const listener of rejectListeners) listener(key, source);
    return { ok: false, reason, issues, overloaded };
  }

  function ingestThen(device: string, payload: Buffer | string | unknown, source: IngestSource, done: Ingested): void {
    const account = registry.get(device);
    const type = account?.role === "device" ? deviceType(account.type) : undefined;
    if (!type) return done(reject(source, "not a device with a known type", [], "unknown device"));
    const validated = validateSample(type, device, payload, now());
    if (!validated.ok) return done(reject(source, validated.reason, validated.issues));
    // Serialised once, for the point clock, the spool and the store.
    validated.sample.tagsJson = type.tags.length === 0 ? "{}" : JSON.stringify(validated.sample.tags);
    validated.sample.fieldsJson = JSON.stringify(validated.sample.fields);
    validated.sample.pointNs = points.assign(validated.sample);
    spool.appendThen(validated.sample, (err, sample) => {
      if (err) {
        if (err instanceof SpoolFullError) return done(reject(source, err.message, [], "spool full", true));
        return done(null, err);
      }
      try {
        afterAppend?.();
        counters.accepted++;
        toListeners(sample!, source);
        for (const link of links) link.accepted?.(sample!, source);
      } catch (listenerError) {
        // Durable all the same; the sender hears of an internal error, as from a failed step.
        return done(null, listenerError);
      }
      done({ ok: true, sample: sample! });
    });
  }

  function toListeners(sample: SpooledSample, source: IngestSource): void {
    const previous = last.get(sample.device);
    if (!previous || previous.time <= sample.time) last.set(sample.device, sample);
    for (const listener of listeners) listener(sample, source);
  }

  for (const link of links) link.listen({ telemetry: (device, payload, done) => ingestThen(device, payload, link.protocol, done) });

  return {
    counters,
    ingest: (device, payload, source) => new Promise((resolve, reject) => ingestThen(device, payload, source, (result, err) => (result ? resolve(result) : reject(err)))),
    ingestThen,
    onSample: (listener) => void listeners.push(listener),
    // To listeners as from the "peer" link: not accepted here (the metrics do not count it).
    shared: (sample) => toListeners(sample, "peer"),
    onReject: (listener) => void rejectListeners.push(listener),
    lastSample: (device) => last.get(device),
  };
}
