// The CLI against a cluster's PostgreSQL (docs/cluster.md, docs/cli.md): `migrate`
// creates the schema and copies a standalone node's registry; the account commands
// work on the shared registry; what is not there yet, wrong or unreachable is one
// line on stderr naming the key or the command to run.
import t from "tap";
import { badInput, cliEnv, okJson, spawnCli, type TT } from "../helpers/cli.js";
import { freePort } from "../helpers/ports.js";
import { startPostgres } from "../helpers/postgres.js";

const postgres = await startPostgres();
t.teardown(() => postgres.close());

const PW = { SWITCHBOARD_PASSWORD: "device pw 1" };
const clusterConfig = (url: string) => `cluster:\n  nodeId: a\n  redis: { url: "redis://127.0.0.1:6379" }\n  postgres: { url: "${url}" }\ntsdb: { kind: influx }\n`;
const clusterEnv = async (t: TT) => cliEnv(t, clusterConfig(await postgres.database()));

t.test("migrate, then add, list and remove accounts on the shared registry", async (t) => {
  const env = await clusterEnv(t);
  badInput(t, await env.run("device", "add", "t1", "--type", "thermostat"), "before migrate", /no Switchboard schema: run `switchboard migrate --config FILE`/);
  t.same(okJson(t, await env.run("migrate"), "migrate"), { schema: 1, from: null });
  t.same(okJson(t, await env.run("migrate"), "migrate again"), { schema: 1, from: 1 });
  const withEnv = (...args: string[]) => spawnCli([...args, "--config", env.configFile], { env: PW }).exited;
  t.same(okJson(t, await withEnv("device", "add", "t2", "--type", "thermostat"), "device add with SWITCHBOARD_PASSWORD"), { id: "t2", jid: "t2@localhost", type: "thermostat" });
  badInput(t, await withEnv("device", "add", "t2", "--type", "thermostat"), "the same id again", /'t2' already exists/);
  okJson(t, await withEnv("account", "add", "svc", "--role", "service"), "account add");
  const list = okJson(t, await env.run("device", "list", "--json"), "device list");
  t.same(list.map((d: { id: string }) => d.id), ["t2"], "only the device that was added");
  t.same(okJson(t, await env.run("device", "remove", "t2"), "device remove"), { removed: "t2" });
  t.same(okJson(t, await env.run("device", "list", "--json"), "device list after remove"), []);
});

t.test("migrate --from copies a standalone node's registry; its devices keep their passwords", async (t) => {
  const standalone = cliEnv(t);
  okJson(t, await spawnCli(["device", "add", "old-1", "--type", "door-sensor", "--config", standalone.configFile], { env: PW }).exited, "standalone device add");
  const env = await clusterEnv(t);
  t.same(okJson(t, await env.run("migrate", "--from", standalone.dataDir), "migrate --from"), { schema: 1, from: null, copied: 1, skipped: 0 });
  t.same(okJson(t, await env.run("migrate", "--from", standalone.dataDir), "migrate --from again"), { schema: 1, from: 1, copied: 0, skipped: 1 });
  const list = okJson(t, await env.run("device", "list", "--json"), "device list");
  t.same(list.map((d: { id: string; type: string }) => [d.id, d.type]), [["old-1", "door-sensor"]]);
  badInput(t, await env.run("migrate", "--from", env.dir), "--from a directory with no registry", /no registry.sqlite there/);
});

t.test("bad input: no cluster, Redis or PostgreSQL unreachable or missing database, cluster with the embedded store", async (t) => {
  badInput(t, await cliEnv(t).run("migrate"), "migrate without cluster", /migrate works on a cluster's PostgreSQL: the configuration has no cluster.postgres.url/);
  const env = await clusterEnv(t);
  await env.run("migrate");
  const closed = await freePort();
  const noRedis = cliEnv(t, clusterConfig(await postgres.database()).replace("6379", String(closed)));
  badInput(t, await noRedis.run("start"), "start with Redis not listening", new RegExp(`cannot reach Redis at 127\\.0\\.0\\.1:${closed} \\(cluster\\.redis\\.url\\): ECONNREFUSED`));
  badInput(t, await noRedis.run("cluster", "status"), "cluster status with Redis not listening", /cannot reach Redis at 127\.0\.0\.1:\d+ \(cluster\.redis\.url\)/);
  badInput(t, await cliEnv(t).run("cluster", "status"), "cluster status without a cluster", /cluster status needs a cluster: the configuration has no cluster key/);
  const unreachable = cliEnv(t, clusterConfig(`postgres://switchboard:s3cret-pw@127.0.0.1:${closed}/switchboard`));
  const r = await unreachable.run("device", "list");
  badInput(t, r, "PostgreSQL not listening", new RegExp(`cannot reach PostgreSQL at 127\\.0\\.0\\.1:${closed} \\(cluster\\.postgres\\.url\\): ECONNREFUSED`));
  t.notMatch(r.stderr, /s3cret-pw/, "the URL's password is not printed");
  const missing = cliEnv(t, clusterConfig(`postgres://postgres@127.0.0.1:${postgres.port}/no_such_db`));
  badInput(t, await missing.run("migrate"), "a database that does not exist", /PostgreSQL at 127\.0\.0\.1:\d+ \(cluster\.postgres\.url\): database "no_such_db" does not exist/);
  const embedded = cliEnv(t, `cluster:\n  nodeId: a\n  redis: { url: "redis://127.0.0.1:6379" }\n  postgres: { url: "postgres://h/db" }\n`);
  badInput(t, await embedded.run("check-config"), "cluster with the embedded store", /tsdb\.kind: a cluster needs the shared store: set tsdb\.kind to influx/);
  const badNode = cliEnv(t, clusterConfig("postgres://h/db").replace("nodeId: a", "nodeId: Node_A"));
  badInput(t, await badNode.run("check-config"), "a bad node id", /cluster\.nodeId: must match \[a-z0-9-\]\{1,32\}/);
});
