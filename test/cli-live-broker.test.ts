// The `switchboard` command next to a running broker on the same data dir (docs/cli.md):
// devices and accounts added, imported or removed by the CLI log in, or stop logging
// in, at the running broker without a restart; the broker exits 0 on SIGTERM.
import t from "tap";
import { RawClient } from "./helpers/raw.js";
import { cliEnv, kill, okJson, spawnCli, waitListening } from "./helpers/cli.js";
import { waitFor } from "./helpers/wait.js";

// The broker subprocess needs more than the default file timeout.
t.setTimeout(300_000);

const cli = (args: string[]) => spawnCli(args).exited;

/** SASL PLAIN over STARTTLS; true on <success/>, false on <failure/>. */
async function tryLogin(port: number, user: string, password: string): Promise<boolean> {
  const c = await RawClient.connect(port);
  try {
    await c.secureStream();
    return (await c.plainAuth(user, password, 15_000)).startsWith("<success");
  } finally {
    c.close();
  }
}

/** Whether `fn` comes true within 5 s. */
const eventually = (what: string, fn: () => Promise<boolean>) => waitFor(fn, 5000, what).then(() => true, () => false);

t.test("the CLI works while a broker runs on the same dataDir", { timeout: 90_000 }, async (t) => {
  const env = cliEnv(t);
  const startConfig = env.file(
    "broker.yaml",
    [
      `dataDir: ${JSON.stringify(env.dataDir)}`,
      "xmpp: {host: 127.0.0.1, port: 0}",
      "mqtt: {host: 127.0.0.1, port: 0, tlsPort: null}",
      "http: {host: 127.0.0.1, port: 0}",
      // The checks below fail logins on purpose, repeatedly: no slow-down for them.
      "auth: {maxFailures: 1000, maxAccountFailures: 1000}",
      "",
    ].join("\n"),
  );
  const runWith = (...args: string[]) => cli([...args, "--config", startConfig]);
  okJson(t, await runWith("device", "add", "before-start", "--type", "thermostat", "--password", "pw-before"), "add before start");

  const broker = spawnCli(["start", "--config", startConfig]);
  t.teardown(() => kill(broker));
  const listening = (await waitListening(broker))?.[0];
  if (!listening) {
    t.fail(`broker did not log "listening" (stdout: ${broker.stdout}, stderr: ${broker.stderr})`);
    return;
  }
  const xmppPort = listening.xmpp as number;
  t.type(xmppPort, "number");
  t.ok(await tryLogin(xmppPort, "before-start", "pw-before"), "a device provisioned before start logs in");

  const added = okJson(t, await runWith("device", "add", "live-1", "--type", "thermostat"), "device add while running");
  t.equal(added.jid, "live-1@localhost");
  t.ok(await eventually("login", () => tryLogin(xmppPort, "live-1", added.password)), "the running broker accepts the new device's generated password");

  const op = okJson(t, await runWith("account", "add", "live-op", "--role", "operator"), "account add while running");
  t.ok(await eventually("login", () => tryLogin(xmppPort, "live-op", op.password)), "the new operator logs in");

  const csv = env.file("live.csv", "live-2,door-sensor,pw-live-2\nlive-3,power-meter,pw-live-3\n");
  const imp = await runWith("device", "import", csv);
  t.equal(imp.code, 0, `import while running (${imp.stderr.trim()})`);
  t.ok(await eventually("login", () => tryLogin(xmppPort, "live-3", "pw-live-3")), "an imported device logs in");

  const list = await runWith("device", "list", "--json");
  t.equal(list.code, 0);
  t.same((JSON.parse(list.stdout) as Array<{ id: string }>).map((d) => d.id).sort(), ["before-start", "live-1", "live-2", "live-3"]);

  const rm = await runWith("device", "remove", "live-1");
  t.equal(rm.code, 0, `remove while running (${rm.stderr.trim()})`);
  t.ok(await eventually("refused", async () => !(await tryLogin(xmppPort, "live-1", added.password))), "a removed device can no longer log in");

  t.equal(broker.child.exitCode, null, "broker still running");
  broker.child.kill("SIGTERM");
  const exit = await Promise.race([broker.exited, new Promise<null>((r) => setTimeout(() => r(null), 15_000))]);
  t.ok(exit, "broker exits within 15 s of SIGTERM");
  t.equal(exit?.code, 0, `broker exits 0 on SIGTERM (stderr: ${broker.stderr.trim()})`);
  t.equal(exit?.signal ?? null, null, "not killed by the signal");
});
