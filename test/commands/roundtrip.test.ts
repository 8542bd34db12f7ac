// The whole command round trip (docs/commands.md) with no code of ours on either client side:
// the operator is Debian's python3-slixmpp with its own xep_0050 plugin
// (test/commands/slixmpp_commands.py), over STARTTLS with the broker's certificate as
// the only trust anchor; the thermostat th1 is Debian's mosquitto_sub and mosquitto_pub
// glued by a few lines of bash (test/commands/device.sh).
//
// One MQTT connection per device: the mosquitto_pub that answers connects with the
// device's client id and takes the session over from mosquitto_sub (MQTT 3.1.1
// §3.1.4). The broker keeps the device's presence and its pending commands across a
// takeover, so the reply settles the command; mosquitto_sub reconnects by itself a
// second later (device.sh prints `subscribed` again) and the test waits for that.
import t from "tap";
import { join } from "node:path";
import { startTestBroker, type TestBroker } from "../helpers/broker.js";
import { CommandOperator, fieldOf, ShellDevice, single, STEP_MS } from "../helpers/command-peers.js";
import { requireTools, type Tool } from "../helpers/programs.js";
import { waitFor } from "../helpers/wait.js";

const NS_COMMANDS = "http://jabber.org/protocol/commands";
const FORM_TYPE = "urn:xmpp:switchboard:command:thermostat:set_setpoint";
const DEVICE_PASSWORD = "th1 secret";

const TOOLS: Tool[] = [
  { python: "slixmpp", debian: "python3-slixmpp" },
  ...["mosquitto_sub", "mosquitto_pub"].map((command) => ({ command, args: ["--help"], debian: "mosquitto-clients", expect: /mosquitto/ })),
  { command: "bash", args: ["--version"], debian: "bash" },
  { command: "stdbuf", args: ["--version"], debian: "coreutils" },
  { command: "sed", args: ["--version"], debian: "sed" },
];

t.test("a command round trip with slixmpp (xep_0050) and mosquitto_sub/mosquitto_pub only", async (t) => {
  if (!requireTools(t, TOOLS)) return;

  let broker: TestBroker | null = null;
  let op: CommandOperator | null = null;
  const devices: ShellDevice[] = [];
  t.teardown(async () => {
    op?.kill();
    await Promise.all(devices.map((d) => d.stop()));
    await broker?.close();
  });

  // The default command timeout is 10 s; 8 s here so that "failed at once" is clearly
  // not the timeout, and every wait stays within 15 s.
  broker = await startTestBroker({ commands: { timeoutMs: 8000 } }, [
    { name: "op1", role: "operator", password: "op1 secret" },
    { name: "th1", role: "device", type: "thermostat", password: DEVICE_PASSWORD },
  ]);
  const b = broker;
  const online = () => Boolean(b.xmpp.sessions.get("th1@localhost/mqtt"));
  const startDevice = (mode: "reply" | "silent") => {
    const d = new ShellDevice(b.ports.mqtt, "th1", DEVICE_PASSWORD, mode);
    devices.push(d);
    return d;
  };

  let dev = startDevice("reply");
  op = new CommandOperator(b.ports.xmpp, "op1@localhost", "op1 secret", join(b.dataDir, "tls", "cert.pem"));
  const o = op;

  await t.test("the mosquitto device and the slixmpp operator come online", async (t) => {
    await dev.subscribed();
    t.ok(online(), "th1 is online at th1@localhost/mqtt");
    const start = await o.event("session_start");
    t.match(start.jid, /^op1@localhost\/.+$/);
    const pres = (await o.waitFor("th1's presence at slixmpp", (l) => l.event === "presence" && l.from === "th1@localhost/mqtt")).line;
    t.equal(pres.type, "available", "slixmpp sees th1 available");
  });

  await t.test("slixmpp lists th1's commands at its bare JID and at /mqtt", async (t) => {
    for (const jid of ["th1@localhost", "th1@localhost/mqtt"]) {
      const list = await o.command({ cmd: "commands", jid });
      t.equal(list.ok, true, `get_commands(${jid}) ${JSON.stringify(list)}`);
      t.equal(list.from, jid, "answered by the JID asked");
      t.equal(list.node, NS_COMMANDS);
      // slixmpp keeps disco items in a set: their order is not the wire order.
      const items = [...(list.items as Array<{ node: string }>)].sort((a, b) => a.node.localeCompare(b.node));
      t.same(items, [
        { jid, node: "reboot", name: "Restart the device" },
        { jid, node: "set_setpoint", name: "Set the target temperature" },
      ]);
      const info = await o.command({ cmd: "info", jid, node: "set_setpoint" });
      t.equal(info.ok, true, JSON.stringify(info));
      t.same(info.identities, [{ category: "automation", type: "command-node", name: "Set the target temperature" }]);
      t.match(info.features, [NS_COMMANDS, "jabber:x:data"]);
    }
  });

  await t.test("set_setpoint: form, 21.5 submitted, mosquitto_sub gets it, mosquitto_pub's reply completes it", async (t) => {
    const from = dev.lines.length;
    // complete_command: the plugin's own workflow API, as an interactive client uses it.
    const run = await o.run("th1@localhost", "set_setpoint", { values: { value: "21.5" }, submit: "flow" });
    t.equal(run.outcome, "completed", JSON.stringify(run));
    t.equal(run.steps.length, 2, "a form, then the result");
    const [form, done] = run.steps;

    // Step 1: the form, as slixmpp's xep_0004 and xep_0122 parsed it.
    t.match(form, { iq: "result", from: "th1@localhost", status: "executing", node: "set_setpoint", execute: "complete" });
    t.ok(form?.sessionid, "a session id");
    t.ok(form?.actions?.includes("complete"), "complete is an allowed action");
    t.equal(form?.form?.type, "form");
    t.equal(form?.form?.title, "Set the target temperature");
    t.equal(fieldOf(form?.form, "FORM_TYPE")?.type, "hidden");
    t.equal(single(fieldOf(form?.form, "FORM_TYPE")?.value), FORM_TYPE);
    const value = fieldOf(form?.form, "value");
    t.match(value, { type: "text-single", label: "target temperature, °C", required: true }, JSON.stringify(value));
    t.same(value?.validate, { datatype: "xs:double", range: { minimum: "5", maximum: "35" }, basic: false, regex: null }, "XEP-0122: xs:double in [5, 35]");

    // The device side: what mosquitto_sub printed, and what mosquitto_pub sent back.
    const cmd = await dev.command(from);
    t.equal(cmd.topic, "devices/th1/commands/set_setpoint");
    t.equal(cmd.qos, "1", "delivered at QoS 1");
    t.same(Object.keys(cmd.payload).sort(), ["id", "params"], cmd.raw);
    t.same(cmd.payload.params, { value: 21.5 }, "the value as a JSON number");
    t.match(cmd.payload.id, /^[\w-]{8,}$/, "a correlation id");
    const replied = await dev.reply(cmd.index);
    t.equal(replied, `replied {"id":"${String(cmd.payload.id)}","ok":true,"result":{"setpoint":21.5}}`);

    // Step 2: completed, with the result as a form.
    t.match(done, { iq: "result", from: "th1@localhost", status: "completed", node: "set_setpoint", sessionid: form?.sessionid });
    t.same(done?.notes, [{ type: "info", text: "set_setpoint completed on th1" }]);
    t.equal(done?.form?.type, "result");
    t.equal(single(fieldOf(done?.form, "FORM_TYPE")?.value), FORM_TYPE);
    t.equal(single(fieldOf(done?.form, "setpoint")?.value), "21.5", "setpoint = 21.5");
    t.same(run.raw_errors, []);

    // The answering mosquitto_pub took the session over; mosquitto_sub comes back.
    await dev.subscribed(cmd.index); // mosquitto_sub is back after the takeover
    t.ok(b.logs.some((l) => /"msg":"command"/.test(l) && /"command":"set_setpoint"/.test(l) && /"outcome":"completed"/.test(l) && /"who":"op1@localhost\//.test(l)), "audited");
  });

  await t.test("an out-of-range value (99): bad-request naming `value`, nothing reaches the device", async (t) => {
    await waitFor(online, STEP_MS, "th1 online");
    const from = dev.lines.length;
    // send_command for the submission: the awaited IQ gets the error (see below for
    // complete_command).
    const run = await o.run("th1@localhost/mqtt", "set_setpoint", { values: { value: "99" }, submit: "direct" });
    t.equal(run.outcome, "error", JSON.stringify(run));
    t.equal(run.steps.length, 2);
    t.match(run.steps[0], { iq: "result", status: "executing", from: "th1@localhost/mqtt" });
    const err = run.steps[1];
    t.match(err, { iq: "error", from: "th1@localhost/mqtt", error_type: "modify", condition: "bad-request", specific: "bad-payload" });
    t.match(err?.text, /^value: /, `the text names the field: ${err?.text}`);
    t.match(err?.text, /35/, "and the rule");

    // The same with complete_command (slixmpp's workflow API): slixmpp 1.8 hands an error
    // to the session's error handler only when the error IQ carries <command sessionid=…/>
    // (as XEP-0050's own error example does), which the broker echoes.
    const flow = await o.run("th1@localhost/mqtt", "set_setpoint", { values: { value: "99" }, submit: "flow", wait: 3 });
    t.equal(flow.raw_errors.length, 1, `the broker answered the submission: ${JSON.stringify(flow.raw_errors)}`);
    t.match(flow.raw_errors[0], { condition: "bad-request", specific: "bad-payload", text: /^value: / });
    t.equal(flow.raw_errors[0]?.echoed_command, true, "the error IQ echoes <command node sessionid/> (XEP-0050 §4.6 example; RFC 6120 §8.3.1 allows it)");
    t.equal(flow.outcome, "error", "slixmpp's workflow error handler saw the error");

    await new Promise((r) => setTimeout(r, 300));
    t.same(dev.lines.slice(from).filter((l) => l.startsWith("command ")), [], "mosquitto_sub received nothing");
  });

  await t.test("reboot: no parameters, one step, the device answers {}", async (t) => {
    await waitFor(online, STEP_MS, "th1 online");
    const from = dev.lines.length;
    const run = await o.run("th1@localhost/mqtt", "reboot");
    t.equal(run.outcome, "completed", JSON.stringify(run));
    t.equal(run.steps.length, 1, "completed at once, no form");
    t.match(run.steps[0], { iq: "result", from: "th1@localhost/mqtt", status: "completed", node: "reboot", form: null });
    t.ok(run.steps[0]?.sessionid, "a session id");
    t.same(run.steps[0]?.notes, [{ type: "info", text: "reboot completed on th1" }]);
    const cmd = await dev.command(from);
    t.equal(cmd.topic, "devices/th1/commands/reboot");
    t.equal(cmd.qos, "1");
    t.same(cmd.payload.params, {});
    const replied = await dev.reply(cmd.index);
    t.equal(replied, `replied {"id":"${String(cmd.payload.id)}","ok":true,"result":{}}`);
    await dev.subscribed(cmd.index); // mosquitto_sub is back after the takeover
  });

  await t.test("a device that disconnects while its command is pending fails it at once", async (t) => {
    await waitFor(online, STEP_MS, "th1 online");
    await dev.stop();
    await waitFor(() => !online(), STEP_MS, "th1 offline");
    dev = startDevice("silent");
    await dev.subscribed();
    await waitFor(online, STEP_MS, "th1 online");
    const pending = o.run("th1@localhost", "set_setpoint", { values: { value: "22" }, submit: "direct" });
    const cmd = await dev.command(0);
    t.same(cmd.payload.params, { value: 22 });
    const stopped = Date.now();
    await dev.stop();
    const run = await pending;
    const elapsed = Date.now() - stopped;
    t.equal(run.outcome, "error", JSON.stringify(run));
    t.match(run.steps[1], { iq: "error", from: "th1@localhost", condition: "recipient-unavailable", error_type: "wait" });
    t.match(run.steps[1]?.text, /th1/);
    t.ok(elapsed < 4000, `failed ${elapsed} ms after mosquitto_sub left, not at the 8 s timeout`);
  });

  await t.test("a command to the offline device: recipient-unavailable", async (t) => {
    await waitFor(() => !online(), STEP_MS, "th1 offline");
    const lastPresence = () => o.lines.filter((l) => l.event === "presence" && l.from === "th1@localhost/mqtt").at(-1)?.type;
    t.equal(await waitFor(() => lastPresence() === "unavailable" && "unavailable", STEP_MS, "th1's unavailable presence at slixmpp"), "unavailable", "slixmpp saw th1 go");
    // One step: the error answers start_command's IQ, and the plugin's error handler gets it.
    const reboot = await o.run("th1@localhost", "reboot");
    t.equal(reboot.outcome, "error", JSON.stringify(reboot));
    t.equal(reboot.steps.length, 1);
    t.match(reboot.steps[0], { iq: "error", from: "th1@localhost", condition: "recipient-unavailable", error_type: "wait" });
    t.match(reboot.steps[0]?.text, /th1/);
    // With a form: the form still comes (the broker speaks for the device), the submission fails.
    const set = await o.run("th1@localhost", "set_setpoint", { values: { value: "20" }, submit: "direct" });
    t.equal(set.outcome, "error", JSON.stringify(set));
    t.match(set.steps, [{ iq: "result", status: "executing" }, { iq: "error", condition: "recipient-unavailable" }]);
    t.equal(dev.lines.filter((l) => l.startsWith("command ")).length, 1, "the stopped device received only its one command");
  });

  await t.test("slixmpp leaves cleanly", async (t) => {
    o.quit();
    const gone = await o.event("disconnected");
    t.equal(gone.clean, true);
    await Promise.race([o.exited, new Promise((r) => setTimeout(r, STEP_MS))]);
    t.same(o.exit, { code: 0, signal: null }, `slixmpp exited cleanly${o.exit?.code ? o.describe() : ""}`);
    // Exceptions in slixmpp's handlers or in the script; (asyncio's note about the
    // dropped IqError of the complete_command case above is not one of ours).
    t.notMatch(o.stderr, /ERROR (slixmpp|root)/, "no exception in slixmpp or in the script");
  });
});
