// Prometheus metrics (docs/operations.md) through prom-client, named switchboard_*
// with units in the names. Each part registers what it counts: counts are kept by the
// parts as plain numbers and read at scrape time, so a scrape costs nothing between
// scrapes and a sample costs no label hashing.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** One value, or values by label values (in the order of `labels`). */
export type Reading = number | Iterable<readonly [labelValues: readonly string[], value: number]>;

export interface Metrics {
  readonly registry: Registry;
  /** A count a part keeps (never going down), exported as it stands at scrape time. */
  counter(name: string, help: string, read: () => Reading, labels?: readonly string[]): void;
  /** A value read at scrape time. */
  gauge(name: string, help: string, read: () => Reading, labels?: readonly string[]): void;
  /** A distribution observed as events happen; returns the observer. */
  histogram(name: string, help: string, buckets: number[], labels?: readonly string[]): (value: number, ...labelValues: string[]) => void;
  /** `switchboard_connections{protocol}`: each listener of a protocol adds itself; their counts are summed. */
  connections(protocol: string, source: { readonly connections: number }): void;
}

/** A map of one label's values to counts, as a Reading. */
export const byLabel = (map: ReadonlyMap<string, number>): Reading => [...map].map(([k, v]) => [[k], v] as const);

export function createMetrics(defaultLabels: Record<string, string> = {}): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels(defaultLabels);
  collectDefaultMetrics({ register: registry, prefix: "switchboard_" });
  const registers = [registry];

  function set(labels: readonly string[], reading: Reading, apply: (labels: Record<string, string>, value: number) => void): void {
    if (typeof reading === "number") return apply({}, reading);
    for (const [values, value] of reading) apply(Object.fromEntries(labels.map((l, i) => [l, values[i] ?? ""])), value);
  }

  const connectionSources = new Map<string, Array<{ readonly connections: number }>>();
  new Gauge({
    name: "switchboard_connections",
    help: "Open client connections by protocol",
    labelNames: ["protocol"],
    registers,
    collect() {
      for (const [protocol, sources] of connectionSources) this.set({ protocol }, sources.reduce((n, s) => n + s.connections, 0));
    },
  });

  // Parts may add readers to a metric of the same name (a gauge per bridge, say): each
  // reader's values are set in turn.
  const readers = new Map<string, Array<() => Reading>>();
  function register(kind: "counter" | "gauge", name: string, help: string, read: () => Reading, labels: readonly string[]): void {
    const known = readers.get(name);
    if (known) return void known.push(read);
    const list = [read];
    readers.set(name, list);
    const labelNames = [...labels];
    if (kind === "counter")
      new Counter({
        name, help, labelNames, registers,
        collect() {
          this.reset();
          for (const r of list) set(labels, r(), (l, v) => this.inc(l, v));
        },
      });
    else
      new Gauge({
        name, help, labelNames, registers,
        collect() {
          this.reset();
          for (const r of list) set(labels, r(), (l, v) => this.set(l, v));
        },
      });
  }

  return {
    registry,
    counter: (name, help, read, labels = []) => register("counter", name, help, read, labels),
    gauge: (name, help, read, labels = []) => register("gauge", name, help, read, labels),
    histogram(name, help, buckets, labels = []) {
      const h = new Histogram({ name, help, buckets, labelNames: [...labels], registers });
      return (value, ...labelValues) => (labelValues.length ? h.labels(...labelValues).observe(value) : h.observe(value));
    },
    connections: (protocol, source) => void connectionSources.set(protocol, [...(connectionSources.get(protocol) ?? []), source]),
  };
}
