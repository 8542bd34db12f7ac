// Bad input to `switchboard` (docs/cli.md): exit 1, exactly one clear line on stderr,
// no stack trace, and nothing changed in the registry; a config error names its key.
import t from "tap";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { badInput, cliEnv, okJson } from "./helpers/cli.js";

t.setTimeout(300_000);

t.test("bad input exits 1 with one clear line on stderr, and changes nothing", async (t) => {
  const env = cliEnv(t);
  okJson(t, await env.run("device", "add", "existing", "--type", "thermostat"), "add");
  okJson(t, await env.run("account", "add", "svc", "--role", "service"), "add service");

  badInput(t, await env.run("device", "add", "d1", "--type", "toaster"), "unknown type", /toaster/, /type/i);
  badInput(t, await env.run("device", "add", "existing", "--type", "thermostat"), "duplicate id", /existing/, /exist|duplicate|taken/i);
  badInput(t, await env.run("device", "add", "svc", "--type", "thermostat"), "id of an existing service account", /svc/, /exist|duplicate|taken/i);
  badInput(t, await env.run("account", "add", "existing", "--role", "operator"), "account named like an existing device", /existing/, /exist|duplicate|taken/i);
  badInput(t, await env.run("device", "add", "Thermo1", "--type", "thermostat"), "uppercase name", /\bid\b|name/i);
  badInput(t, await env.run("device", "add", ".hidden", "--type", "thermostat"), "leading dot", /\bid\b|name/i);
  badInput(t, await env.run("device", "add", "-dash", "--type", "thermostat"), "leading dash");
  badInput(t, await env.run("device", "add", "a".repeat(65), "--type", "thermostat"), "65 characters", /\bid\b|name|long|64/i);
  badInput(t, await env.run("device", "add", "", "--type", "thermostat"), "empty name", /\bid\b|name/i);
  badInput(t, await env.run("device", "add", "a@b", "--type", "thermostat"), "'@' in the name", /\bid\b|name/i);
  badInput(t, await env.run("device", "add", "sp ace", "--type", "thermostat"), "space in the name", /\bid\b|name/i);
  badInput(t, await env.run("device", "add", "d2"), "missing --type", /type/);
  badInput(t, await env.run("device", "add", "--type", "thermostat"), "missing id", /\bid\b|name/i);
  badInput(t, await env.run("device", "add", "d3", "--type", "thermostat", "--password", ""), "empty password", /password/i);
  badInput(t, await env.run("account", "add", "bob", "--role", "admin"), "unknown role", /role/i, /admin|service|operator/);
  badInput(t, await env.run("account", "add", "bob", "--role", "device"), "role device via account add", /role/i);
  badInput(t, await env.run("account", "add", "bob"), "missing --role", /role/i);
  badInput(t, await env.run("account", "add", "Bob", "--role", "operator"), "bad account name", /\bname\b|\bid\b/i);
  badInput(t, await env.run("frobnicate"), "unknown command", /frobnicate/, /command/i);
  badInput(t, await env.run("device", "explode", "x"), "unknown device subcommand", /explode/);
  badInput(t, await env.run("device", "add", "d4", "--type", "thermostat", "--colour", "red"), "unknown flag", /--colour|colour/);
  badInput(t, await env.run("device", "list", "--jsonn"), "misspelt flag", /jsonn/);

  t.same(await env.allNames(), ["existing", "svc"], "nothing was added by any of them");
  t.equal(await env.registry((reg) => reg.get("existing")?.type), "thermostat", "the existing device is unchanged");
});

t.test("a config error exits 1 with one line naming the key", async (t) => {
  const env = cliEnv(t, "xmpp:\n  prot: 5222\n");
  badInput(t, await env.run("device", "add", "d1", "--type", "thermostat"), "unknown config key", /xmpp\.prot/);
  t.notOk(existsSync(join(env.dataDir, "registry.sqlite")), "nothing was written");
});
