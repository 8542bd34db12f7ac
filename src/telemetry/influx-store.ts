// InfluxDB 1.x through the `influx` package (CONTRACT §6): measurement from the device
// type, tag `device` plus the type's tag keys, fields the rest, nanosecond time
// (milliseconds plus the spool sequence, see pointTimeNs). Numbers are always written
// as floats, so a key's field type never changes.
//
// Writes: the body is line protocol made here and posted through the package's
// connection pool (its hosts, auth, timeouts and error reports). The package's
// writePoints makes each point through a schema check, a sorted copy of its fields
// and a regular-expression escape of every key and value: a tenth of the event
// loop's time at 50,000 samples/s (docs/benchmarks.md). Queries and database
// creation go through the package's API.
import { InfluxDB, escape } from "influx";
import { Pool } from "influx/lib/src/pool.js";
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

export function createInfluxStore(opts: { url: string; database: string; timeoutMs?: number }): TelemetryStore {
  const url = new URL(opts.url);
  const protocol = url.protocol === "https:" ? "https" : "http";
  const port = Number(url.port || (protocol === "https" ? 443 : 8086));
  const username = url.username ? decodeURIComponent(url.username) : undefined;
  const password = url.password ? decodeURIComponent(url.password) : undefined;
  // Retries and backoff belong to the drainer, which must keep the spool's order.
  const pool = { maxRetries: 0, requestTimeout: opts.timeoutMs ?? 10_000 };
  const influx = new InfluxDB({ hosts: [{ host: url.hostname, port, protocol }], username, password, database: opts.database, pool });
  const writer = new Pool(pool);
  writer.addHost(`${protocol}://${url.hostname}:${port}`);
  const auth = username === undefined ? undefined : `${username}:${password ?? ""}`;
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
        let body = "";
        for (let i = 0; i < samples.length; i++) body += i === 0 ? pointLine(samples[i]!) : `\n${pointLine(samples[i]!)}`;
        await writer.discard({ method: "POST", path: "/write", query: { db: opts.database, precision: "n" }, body, auth });
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
