// InfluxDB 1.x (docs/telemetry.md): measurement from the device type, tag `device` plus
// the type's tag keys, fields the rest, nanosecond time (milliseconds plus the spool
// sequence, see pointTimeNs). Numbers are always written as floats, so a key's field
// type never changes.
//
// Writes: line protocol made here, posted to /write over HTTP (influx-write.ts);
// docs/telemetry.md says why not the `influx` package's writePoints. Queries and
// database creation go through the `influx` package's API.
import { InfluxDB, escape } from "influx";
import { createLineWriter } from "./influx-write.js";
import { StoreError, type TelemetryStore } from "./store.js";
import { pointTimeNs, type Sample } from "./sample.js";

// InfluxDB 1.x line protocol escaping (docs.influxdata.com, "Line protocol syntax"):
// in a measurement, commas and spaces; in tag keys and values and in field keys,
// commas, equals signs and spaces; in a string field value, double quotes and
// backslashes. Line breaks cannot be escaped: the ingest refuses them (validate.ts).
const MEASUREMENT_SPECIAL = /[, ]/;
const KEY_SPECIAL = /[,= ]/;
const STRING_SPECIAL = /["\\]/;
const measurementName = (m: string) => (MEASUREMENT_SPECIAL.test(m) ? m.replace(/[, ]/g, "\\$&") : m);
const tagText = (k: string) => (KEY_SPECIAL.test(k) ? k.replace(/[,= ]/g, "\\$&") : k);
const stringValue = (v: string) => `"${STRING_SPECIAL.test(v) ? v.replace(/["\\]/g, "\\$&") : v}"`;

/** One sample as a line of line protocol; tags sorted by key, as InfluxDB keys series. */
export function pointLine(s: Sample): string {
  let line = measurementName(s.measurement);
  const keys = Object.keys(s.tags);
  if (keys.length === 0) line += `,device=${tagText(s.device)}`;
  else {
    // The device tag is the sender's: a type's own tag of that name does not replace it.
    const tags: Array<[string, string]> = keys.filter((k) => k !== "device").map((k) => [k, s.tags[k]!]);
    tags.push(["device", s.device]);
    tags.sort((a, b) => (a[0] < b[0] ? -1 : 1));
    for (const [k, v] of tags) line += `,${tagText(k)}=${tagText(v)}`;
  }
  let sep = " ";
  for (const k in s.fields) {
    const v = s.fields[k]!;
    line += `${sep}${tagText(k)}=${typeof v === "string" ? stringValue(v) : String(v)}`;
    sep = ",";
  }
  return `${line} ${pointTimeNs(s)}`;
}

/** A request's deadline when none is given (as `tsdb.influx.timeoutMs`'s default). */
const DEFAULT_TIMEOUT_MS = 10_000;

export function createInfluxStore(opts: { url: string; database: string; timeoutMs?: number }): TelemetryStore {
  const url = new URL(opts.url);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const protocol = url.protocol === "https:" ? "https" : "http";
  // InfluxDB's port when the URL gives none; for https, 443.
  if (!url.port && protocol === "http") url.port = "8086";
  const port = Number(url.port || 443);
  const username = url.username ? decodeURIComponent(url.username) : undefined;
  const password = url.password ? decodeURIComponent(url.password) : undefined;
  // Retries and backoff belong to the drainer, which must keep the spool's order.
  const pool = { maxRetries: 0, requestTimeout: timeoutMs };
  // Behind a reverse proxy: the prefix of both /query and /write.
  const path = url.pathname.replace(/\/$/, "") || undefined;
  const influx = new InfluxDB({ hosts: [{ host: url.hostname, port, protocol, path }], username, password, database: opts.database, pool });
  const writer = createLineWriter({ url, database: opts.database, timeoutMs });
  let databaseReady = false;

  async function ensureDatabase(): Promise<void> {
    if (databaseReady) return;
    // CREATE DATABASE is idempotent in InfluxDB 1.x.
    try {
      await influx.createDatabase(opts.database);
    } catch (err) {
      throw err instanceof StoreError ? err : new StoreError(`InfluxDB at ${url.host}: creating database ${opts.database}: ${(err as Error).message}`);
    }
    databaseReady = true;
  }

  return {
    kind: "influx",
    async write(samples) {
      await ensureDatabase();
      let body = "";
      for (let i = 0; i < samples.length; i++) body += i === 0 ? pointLine(samples[i]!) : `\n${pointLine(samples[i]!)}`;
      try {
        await writer.write(body);
      } catch (err) {
        // Dropped since it was made (DROP DATABASE): made again before the retry.
        if (err instanceof StoreError && err.status === 404 && /database not found/.test(err.reason ?? "")) databaseReady = false;
        throw err;
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
    async close() {
      writer.close();
    },
  };
}
