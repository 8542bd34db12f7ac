// What a cluster shares, started for a test file on free ports (docs/cluster.md): a
// real PostgreSQL with Switchboard's schema, Redis and InfluxDB; stopped at the end
// of the file. `config(nodeId)` is a node's configuration for them.
import t from "tap";
import { migrate } from "../../src/registry/postgres-schema.js";
import { startInflux, type TestInflux } from "./influx.js";
import { startPostgres, type TestPostgres } from "./postgres.js";
import { startRedis, type TestRedis } from "./redis.js";

export interface ClusterEngines {
  postgres: TestPostgres;
  influx: TestInflux;
  redis: TestRedis;
  /** The migrated database's URL. */
  url: string;
  /** `cluster` and `tsdb` for a node; `cluster` extras (heartbeatMs, nodeTimeoutMs) merged in. */
  config(nodeId: string, cluster?: Record<string, unknown>): { cluster: Record<string, unknown>; tsdb: Record<string, unknown> };
}

export async function startClusterEngines(): Promise<ClusterEngines> {
  const postgres = await startPostgres();
  t.teardown(() => postgres.close());
  const influx = await startInflux();
  t.teardown(() => influx.close());
  const redis = await startRedis();
  t.teardown(() => redis.close());
  const url = await postgres.database();
  await migrate(url);
  return {
    postgres,
    influx,
    redis,
    url,
    config: (nodeId, cluster = {}) => ({
      cluster: { nodeId, redis: { url: redis.url }, postgres: { url }, ...cluster },
      tsdb: { kind: "influx", influx: { url: influx.url } },
    }),
  };
}
