// The registry a configuration names: PostgreSQL for a cluster (docs/cluster.md), the
// embedded SQLite in dataDir otherwise.
import { resolve } from "node:path";
import type { Config } from "../config.js";
import { openPostgresRegistry } from "./postgres.js";
import type { Registry } from "./registry.js";
import { openSqliteRegistry } from "./sqlite.js";

export function openRegistry(config: Config, opts: { pollMs?: number; onError?: (err: Error) => void } = {}): Promise<Registry> {
  if (config.cluster) return openPostgresRegistry({ url: config.cluster.postgres.url, onError: opts.onError });
  return Promise.resolve(openSqliteRegistry({ dataDir: resolve(config.dataDir), ...opts }));
}
