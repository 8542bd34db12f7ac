// A listening port that cannot be had (docs/operations.md, Start-up errors): in use, not permitted, or an
// address this machine does not have. `switchboard start` exits 1 with one line naming
// the config key and the port, no stack trace, before it ever logs "listening"; and
// every port opened before the failing one is closed again.
import t from "tap";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lines, spawnCli, type Run, type TT } from "../helpers/cli.js";
import { canConnect, freePort, occupy } from "../helpers/ports.js";
import { startTestBroker } from "../helpers/broker.js";
import { ListenError } from "../../src/listen.js";

t.setTimeout(300_000);

function tempDir(t: TT): string {
  const dir = mkdtempSync(join(tmpdir(), "sb-ports-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

type Ports = { xmpp: number; mqtt: number; mqttTls: number; http: number };
const ZERO: Ports = { xmpp: 0, mqtt: 0, mqttTls: 0, http: 0 };

function configFile(dir: string, ports: Ports, xmppHost = "127.0.0.1"): string {
  const file = join(dir, "config.yaml");
  writeFileSync(
    file,
    [
      `dataDir: ${JSON.stringify(join(dir, "data"))}`,
      `xmpp: { host: ${xmppHost}, port: ${ports.xmpp} }`,
      `mqtt: { host: 127.0.0.1, port: ${ports.mqtt}, tlsPort: ${ports.mqttTls} }`,
      `http: { host: 127.0.0.1, port: ${ports.http} }`,
    ].join("\n") + "\n",
  );
  return file;
}

/** Runs `switchboard start`; kills it (and fails) if it has not exited within `ms`. */
async function startExpectingExit(t: TT, config: string, ms = 15_000) {
  const p = spawnCli(["start", "--config", config]);
  const timer = setTimeout(() => p.child.kill("SIGKILL"), ms);
  const r = await p.exited;
  clearTimeout(timer);
  t.not(r.signal, "SIGKILL", `exited by itself within ${ms / 1000} s (took ${r.ms} ms)`);
  return r;
}

/** Exit 1, exactly `line` on stderr and nothing else there, never "listening" on stdout (where the JSON log goes). */
function refused(t: TT, r: Run, line: string): void {
  t.equal(r.code, 1, "exit code 1");
  const err = lines(r.stderr);
  t.equal(err.length, 1, `exactly one line on stderr, got: ${JSON.stringify(r.stderr)}`);
  t.equal(err[0], line);
  t.notMatch(r.stderr, /\n\s+at /, "no stack trace");
  t.notMatch(r.stdout, /"msg":"listening"/, "never logged listening");
  t.notMatch(r.stdout, /listener error/, "the failed bind is not also logged");
}

const CASES: Array<{ key: string; field: keyof Ports }> = [
  { key: "mqtt.port", field: "mqtt" },
  { key: "mqtt.tlsPort", field: "mqttTls" },
  { key: "xmpp.port", field: "xmpp" },
  { key: "http.port", field: "http" },
];

for (const c of CASES) {
  t.test(`${c.key} in use: exit 1, one line naming ${c.key} and the port`, async (t) => {
    const dir = tempDir(t);
    const taken = await occupy();
    t.teardown(() => taken.close());
    const r = await startExpectingExit(t, configFile(dir, { ...ZERO, [c.field]: taken.port }));
    refused(t, r, `error: ${c.key} ${taken.port} is in use`);
    t.ok(await canConnect(taken.port), "the other program still has its port");
  });
}

t.test("xmpp.host an address this machine does not have: exit 1 naming xmpp.host", async (t) => {
  const dir = tempDir(t);
  // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never an address of this machine.
  const r = await startExpectingExit(t, configFile(dir, ZERO, "192.0.2.1"));
  refused(t, r, "error: xmpp.host 192.0.2.1: address not available (not an address of this machine)");
});

// In the broker's own process: the listeners opened before the failing one are closed
// (a subprocess that exits would hide one left open).
for (const c of CASES.filter((c) => c.field !== "mqtt")) {
  t.test(`${c.key} in use: every port opened before it is closed again`, async (t) => {
    const dir = tempDir(t);
    const taken = await occupy();
    t.teardown(() => taken.close());
    const ports: Ports = { xmpp: await freePort(), mqtt: await freePort(), mqttTls: await freePort(), http: await freePort() };
    ports[c.field] = taken.port;
    const started = startTestBroker(
      { xmpp: { port: ports.xmpp }, mqtt: { port: ports.mqtt, tlsPort: ports.mqttTls }, http: { port: ports.http } },
      [],
      { dataDir: join(dir, "data") },
    );
    const err = await started.then(
      () => t.fail("the broker started"),
      (e: unknown) => e,
    );
    t.ok(err instanceof ListenError, "a ListenError");
    t.match(err, { code: "SB_ERR_LISTEN", key: c.key, port: taken.port, reason: "EADDRINUSE" });
    for (const field of ["mqtt", "mqttTls", "xmpp", "http"] as const) {
      if (field !== c.field) t.notOk(await canConnect(ports[field]), `nothing listens on the ${field} port`);
    }
  });
}
