// `switchboard device list` and `device remove` as users run them (docs/cli.md): the
// table and the JSON list, devices only and no passwords; a removed device's id and
// credentials are gone, and the id can be taken again.
import t from "tap";
import { verifyPassword } from "../src/auth/scram.js";
import { badInput, cliEnv, lines, okJson } from "./helpers/cli.js";

t.setTimeout(300_000);

t.test("device list (table) and device list --json", async (t) => {
  const env = cliEnv(t);
  const empty = await env.run("device", "list", "--json");
  t.equal(empty.code, 0);
  t.same(JSON.parse(empty.stdout), [], "no devices: empty JSON array");

  okJson(t, await env.run("device", "add", "therm-1", "--type", "thermostat"), "add");
  okJson(t, await env.run("device", "add", "door-1", "--type", "door-sensor"), "add");
  okJson(t, await env.run("device", "add", "meter-1", "--type", "power-meter"), "add");
  okJson(t, await env.run("account", "add", "ops", "--role", "operator"), "add operator");

  const json = await env.run("device", "list", "--json");
  t.equal(json.code, 0);
  t.equal(json.stderr, "");
  const arr = JSON.parse(json.stdout) as Array<Record<string, unknown>>;
  t.ok(Array.isArray(arr), "a JSON array");
  t.equal(arr.length, 3, "three devices, no operator");
  const byId = new Map(arr.map((d) => [d.id, d]));
  for (const [id, type] of [["therm-1", "thermostat"], ["door-1", "door-sensor"], ["meter-1", "power-meter"]]) {
    t.match(byId.get(id), { id, jid: `${id}@localhost`, type }, `${id} listed with jid and type`);
  }
  t.notOk(JSON.stringify(arr).includes("password"), "no passwords in the list");

  const table = await env.run("device", "list");
  t.equal(table.code, 0);
  t.equal(table.stderr, "");
  const rows = lines(table.stdout);
  t.throws(() => JSON.parse(table.stdout), "without --json it is not JSON");
  t.equal(rows.length, 4, "a header and one row per device");
  t.match(rows[0], /\bID\b/i, "header names the id column");
  t.match(rows[0], /\bTYPE\b/i, "header names the type column");
  for (const [id, type] of [["therm-1", "thermostat"], ["door-1", "door-sensor"], ["meter-1", "power-meter"]]) {
    const row = rows.find((r) => r.split(/\s+/)[0] === id);
    t.ok(row, `${id} has a row`);
    t.match(row ?? "", new RegExp(`\\b${type}\\b`), `${id}'s row shows its type`);
  }
  t.notOk(rows.some((r) => r.startsWith("ops")), "operator not in the device table");
});

t.test("device remove", async (t) => {
  const env = cliEnv(t);
  const added = okJson(t, await env.run("device", "add", "gone-1", "--type", "thermostat"), "add");
  okJson(t, await env.run("device", "add", "stays-1", "--type", "thermostat"), "add");
  const r = await env.run("device", "remove", "gone-1");
  t.equal(r.code, 0, `exit 0 (${r.stderr.trim()})`);
  t.equal(r.stderr, "");
  t.same(await env.deviceIds(), ["stays-1"], "removed from the registry, the other stays");
  t.equal(await env.registry((reg) => reg.credentials("gone-1")), undefined, "credentials gone");
  const list = JSON.parse((await env.run("device", "list", "--json")).stdout) as Array<{ id: string }>;
  t.same(list.map((d) => d.id), ["stays-1"]);

  badInput(t, await env.run("device", "remove", "gone-1"), "removing it twice", /gone-1/);
  badInput(t, await env.run("device", "remove", "never-was"), "unknown id", /never-was/);
  t.same(await env.deviceIds(), ["stays-1"]);

  // The id is free again: adding it back works, with a new password.
  const again = okJson(t, await env.run("device", "add", "gone-1", "--type", "door-sensor"), "re-add");
  t.equal(again.type, "door-sensor");
  await env.registry(async (reg) => {
    t.notOk(await verifyPassword("sha256", (await reg.credentials("gone-1"))!.sha256, added.password), "the old password no longer works");
  });
});
