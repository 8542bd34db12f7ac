// InfluxDB 1.x through the `influx` package (CONTRACT §6): measurement from the device
// type, tag `device` plus the type's tag keys, fields the rest, nanosecond time
// (milliseconds plus the spool sequence, see pointTimeNs). Numbers are always written
// as floats, so a key's field type never changes.
import { InfluxDB, escape } from "influx";
import { StoreError, type TelemetryStore } from "./store.js";
import { pointTimeNs, type Sample } from "./sample.js";

export function createInfluxStore(opts: { url: string; database: string; timeoutMs?: number }): TelemetryStore {
  const url = new URL(opts.url);
  const influx = new InfluxDB({
    hosts: [{ host: url.hostname, port: Number(url.port || (url.protocol === "https:" ? 443 : 8086)), protocol: url.protocol === "https:" ? "https" : "http" }],
    username: url.username || undefined,
    password: url.password || undefined,
    database: opts.database,
    // Retries and backoff belong to the drainer, which must keep the spool's order.
    pool: { maxRetries: 0, requestTimeout: opts.timeoutMs ?? 10_000 },
  });
  let databaseReady = false;

  async function ensureDatabase(): Promise<void> {
    if (databaseReady) return;
    // CREATE DATABASE is idempotent in InfluxDB 1.x.
    await influx.createDatabase(opts.database);
    databaseReady = true;
  }

  return {
    kind: "influx",
    async write(samples) {
      try {
        await ensureDatabase();
        await influx.writePoints(
          samples.map((s) => ({ measurement: s.measurement, tags: { ...s.tags, device: s.device }, fields: s.fields, timestamp: pointTimeNs(s) })),
          { precision: "n" },
        );
      } catch (err) {
        // The package reports an HTTP error as "A <status> <text> error occurred: <body>".
        const message = (err as Error).message ?? String(err);
        if (/database not found/.test(message)) databaseReady = false;
        else if (/^A 400 /.test(message)) throw new StoreError(message, true);
        throw new StoreError(message);
      }
    },
    async query(device, measurement, from, to, limit) {
      const rows = await influx.query<Record<string, unknown> & { time: Date }>(
        `SELECT * FROM ${escape.quoted(measurement)} WHERE "device" = ${escape.stringLit(device)} AND time >= ${from}ms AND time <= ${to}ms ORDER BY time ASC LIMIT ${Math.max(1, Math.floor(limit))}`,
      );
      return rows.map((row) => {
        const { time, device: _d, ...values } = row;
        const fields: Sample["fields"] = {};
        for (const [k, v] of Object.entries(values)) if (v !== null && (typeof v === "number" || typeof v === "boolean" || typeof v === "string")) fields[k] = v;
        return { device, type: "", measurement, time: time.getTime(), tags: {}, fields };
      });
    },
    async close() {},
  };
}
