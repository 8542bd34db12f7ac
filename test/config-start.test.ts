// A good config file as `switchboard start` and `switchboard check-config` read it
// (docs/configuration.md), run as real subprocesses: YAML or JSON with port 0 starts,
// logs one "listening" line with the real ports, which accept connections, and exits
// 0 on SIGTERM; check-config says {ok: true} and creates nothing.
import t from "tap";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { kill, lines, spawnCli, waitListening, type TT } from "./helpers/cli.js";
import { canConnect } from "./helpers/ports.js";
import { tempDir } from "./helpers/temp-dir.js";
import { sleep } from "./helpers/wait.js";

t.setTimeout(300_000);

const yamlPorts = (dataDir: string) =>
  [
    `dataDir: ${JSON.stringify(dataDir)}`,
    "xmpp:",
    "  host: 127.0.0.1",
    "  port: 0",
    "mqtt:",
    "  host: 127.0.0.1",
    "  port: 0",
    "  tlsPort: null",
    "http:",
    "  host: 127.0.0.1",
    "  port: 0",
    "",
  ].join("\n");

async function startGood(t: TT, file: string): Promise<void> {
  const p = spawnCli(["start", "--config", file]);
  t.teardown(() => kill(p));
  const listening = await waitListening(p);
  if (!listening) {
    t.fail(`no "listening" line (stdout: ${p.stdout.slice(0, 1000)}, stderr: ${p.stderr.slice(0, 1000)})`);
    return;
  }
  t.equal(listening.length, 1, "exactly one listening line");
  const rec = listening[0]!;
  for (const key of ["xmpp", "http"] as const) {
    t.type(rec[key], "number", `${key} port is a number`);
    t.ok(Number.isInteger(rec[key]) && (rec[key] as number) > 0 && (rec[key] as number) < 65536, `${key} port ${rec[key]} is a real port, not 0`);
  }
  t.ok("mqtt" in rec, "the line reports the mqtt port");
  t.not(rec.xmpp, rec.http, "distinct ports");
  t.ok(await canConnect(rec.xmpp as number), "xmpp port accepts TCP connections");
  t.ok(await canConnect(rec.http as number), "http port accepts TCP connections");
  if (typeof rec.mqtt === "number") t.ok(await canConnect(rec.mqtt), "mqtt port accepts TCP connections");

  // Every stdout line is one JSON object (pino).
  for (const line of lines(p.stdout)) t.doesNotThrow(() => JSON.parse(line), `log line is JSON: ${line.slice(0, 80)}`);

  p.child.kill("SIGTERM");
  const r = await Promise.race([p.exited, sleep(15_000).then(() => null)]);
  t.ok(r, "exits within 15 s of SIGTERM");
  t.equal(r?.code, 0, `exit 0 on SIGTERM (stderr: ${p.stderr.trim()})`);
  t.notOk(await canConnect(rec.xmpp as number), "xmpp port closed after exit");
  t.notOk(await canConnect(rec.http as number), "http port closed after exit");
}

t.test("a good YAML config with port 0 starts and logs the real ports", async (t) => {
  const dir = tempDir(t, "sb-config-");
  const file = join(dir, "switchboard.yaml");
  writeFileSync(file, yamlPorts(join(dir, "data")));
  await startGood(t, file);
  t.ok(existsSync(join(dir, "data", "registry.sqlite")), "the registry lives in the configured dataDir");
});

t.test("a good JSON config works as well as YAML", async (t) => {
  const dir = tempDir(t, "sb-config-");
  const file = join(dir, "switchboard.json");
  writeFileSync(
    file,
    JSON.stringify(
      {
        dataDir: join(dir, "data"),
        xmpp: { host: "127.0.0.1", port: 0 },
        mqtt: { host: "127.0.0.1", port: 0, tlsPort: null },
        http: { host: "127.0.0.1", port: 0 },
      },
      null,
      2,
    ),
  );
  await startGood(t, file);
  t.ok(existsSync(join(dir, "data", "registry.sqlite")), "the registry lives in the configured dataDir");
});

t.test("check-config prints {ok: true} for good YAML and JSON files", async (t) => {
  const dir = tempDir(t, "sb-config-");
  const yamlFile = join(dir, "good.yaml");
  writeFileSync(yamlFile, `domain: iot.example.org\n${yamlPorts(join(dir, "data"))}tsdb:\n  kind: influx\n  influx: {url: "http://127.0.0.1:8086", database: fleet}\n  batchSize: 100\n  flushMs: 250\ncommands: {timeoutMs: 3000}\n`);
  const jsonFile = join(dir, "good.json");
  writeFileSync(jsonFile, JSON.stringify({ domain: "iot.example.org", dataDir: join(dir, "data"), xmpp: { port: 5222, requireTls: false, maxStanzaBytes: 131072 }, mqtt: { tlsPort: null, maxPacketBytes: 1024 } }));
  const emptyFile = join(dir, "empty.yaml");
  writeFileSync(emptyFile, "");
  for (const file of [yamlFile, jsonFile, emptyFile]) {
    const r = await spawnCli(["check-config", "--config", file]).exited;
    t.equal(r.code, 0, `${file.slice(dir.length)}: exit 0 (${r.stderr.trim()})`);
    t.equal(r.stderr, "", "nothing on stderr");
    const out = lines(r.stdout);
    t.equal(out.length, 1, "one line");
    const parsed = JSON.parse(out[0] ?? "null") as Record<string, unknown>;
    t.equal(parsed.ok, true, '{"ok":true,...}');
  }
  t.notOk(existsSync(join(dir, "data")), "check-config creates nothing");
});
