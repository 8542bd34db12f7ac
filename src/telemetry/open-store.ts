// The store `tsdb.kind` names (docs/telemetry.md): InfluxDB 1.x, or the embedded SQLite
// store beside the spool in the data dir.
import type { Config } from "../config.js";
import { createInfluxStore } from "./influx-store.js";
import { openSqliteStore } from "./sqlite-store.js";
import { spoolFile } from "./spool.js";
import type { TelemetryStore } from "./store.js";

export function openTelemetryStore(tsdb: Config["tsdb"], dataDir: string, onError?: (err: Error) => void): TelemetryStore {
  return tsdb.kind === "influx" ? createInfluxStore(tsdb.influx) : openSqliteStore({ dataDir, spoolFile: spoolFile(dataDir), onError });
}
