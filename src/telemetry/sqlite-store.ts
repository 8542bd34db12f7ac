// The embedded store (CONTRACT §6, the default): samples in SQLite in dataDir, one
// row per point, keyed like an InfluxDB point so a replay overwrites.
import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { pointTimeNs, type Sample } from "./sample.js";
import type { TelemetryStore } from "./store.js";

export function openSqliteStore(opts: { dataDir: string }): TelemetryStore {
  mkdirSync(opts.dataDir, { recursive: true });
  const db = new Database(join(opts.dataDir, "telemetry.sqlite"));
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  db.exec(`CREATE TABLE IF NOT EXISTS samples (
    measurement TEXT NOT NULL, device TEXT NOT NULL, time_ns TEXT NOT NULL, time INTEGER NOT NULL, type TEXT NOT NULL,
    tags TEXT NOT NULL, fields TEXT NOT NULL, PRIMARY KEY (measurement, device, time_ns)) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS samples_by_device_time ON samples (device, time);`);
  const upsert = db.prepare("INSERT OR REPLACE INTO samples (measurement, device, time_ns, time, type, tags, fields) VALUES (?, ?, ?, ?, ?, ?, ?)");
  const select = db.prepare<[string, number, number, number], { time: number; type: string; measurement: string; tags: string; fields: string }>(
    "SELECT time, type, measurement, tags, fields FROM samples WHERE device = ? AND time >= ? AND time <= ? ORDER BY time, time_ns LIMIT ?",
  );
  const writeAll = db.transaction((samples: Parameters<TelemetryStore["write"]>[0]) => {
    for (const s of samples) upsert.run(s.measurement, s.device, pointTimeNs(s).padStart(22, "0"), s.time, s.type, JSON.stringify(s.tags), JSON.stringify(s.fields));
  });
  return {
    kind: "embedded",
    async write(samples) {
      writeAll(samples);
    },
    async query(device, _measurement, from, to, limit): Promise<Sample[]> {
      return select.all(device, from, to, limit).map((r) => ({ device, type: r.type, measurement: r.measurement, time: r.time, tags: JSON.parse(r.tags), fields: JSON.parse(r.fields) }));
    },
    async close() {
      db.close();
    },
  };
}
