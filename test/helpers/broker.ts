// Starts a real broker in this process on 127.0.0.1, port 0, in a temp data dir,
// with accounts provisioned through the same code the CLI uses. With SB_TEST_CLUSTER
// set (test/cluster/as-node-*.test.ts) a broker whose test names no store and no
// cluster is a node of a cluster instead, on PostgreSQL, Redis and InfluxDB started
// once for the test file: the same test, run against a cluster node.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { parseConfig, type Config } from "../../src/config.js";
import { createLogger } from "../../src/log.js";
import { startBroker, type Broker } from "../../src/index.js";
import { addAccount } from "../../src/provision.js";
import type { Role } from "../../src/registry/registry.js";
import type { DeviceType } from "../../devices/index.js";
import t from "tap";
import { startClusterEngines, type ClusterEngines } from "./cluster-engines.js";
import { startRedis } from "./redis.js";

let engines: Promise<ClusterEngines> | undefined;
let nodes = 0;

/**
 * A node's `cluster` and `tsdb` when SB_TEST_CLUSTER is set and the test chose neither.
 * Each broker gets a Redis of its own: brokers of one file with different settings
 * (a stricter ban limit, say) are separate clusters, not nodes of one.
 */
async function asClusterNode(overrides: Record<string, unknown>): Promise<Record<string, unknown>> {
  if (!process.env.SB_TEST_CLUSTER || "cluster" in overrides || "tsdb" in overrides) return {};
  engines ??= startClusterEngines();
  const shared = await engines;
  const redis = await startRedis();
  t.teardown(() => redis.close());
  const node = shared.config(`node-${++nodes}`);
  return { ...node, cluster: { ...node.cluster, redis: { url: redis.url } } };
}

export interface TestAccount {
  name: string;
  role: Role;
  type?: string;
  password: string;
}

export interface TestBroker extends Broker {
  config: Config;
  dataDir: string;
  /** Everything the broker logged, one JSON line each. */
  logs: string[];
  add(account: TestAccount): Promise<void>;
  close(): Promise<void>;
}

export async function startTestBroker(overrides: Record<string, unknown> = {}, accounts: TestAccount[] = [], options: { deviceTypes?: readonly DeviceType[]; dataDir?: string } = {}): Promise<TestBroker> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "sb-test-"));
  const { xmpp, http, mqtt, ...rest } = overrides as Record<string, Record<string, unknown> | undefined>;
  const config = parseConfig({
    ...(await asClusterNode(overrides)),
    dataDir,
    xmpp: { host: "127.0.0.1", port: 0, ...xmpp },
    mqtt: { host: "127.0.0.1", port: 0, tlsPort: 0, ...mqtt },
    http: { host: "127.0.0.1", port: 0, ...http },
    ...rest,
  });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      logs.push(...String(chunk).split("\n").filter(Boolean));
      done();
    },
  });
  const broker = await startBroker(config, { log: createLogger(sink), deviceTypes: options.deviceTypes });
  const add = async (a: TestAccount) => {
    await addAccount(broker.registry, { name: a.name, role: a.role, type: a.type ?? null, password: a.password }, config.auth.scramIterations, options.deviceTypes?.map((t) => t.name));
  };
  for (const a of accounts) if (!broker.registry.get(a.name)) await add(a);
  return {
    ...broker,
    config,
    dataDir,
    logs,
    add,
    async close() {
      await broker.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
