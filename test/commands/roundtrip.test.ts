// The whole command round trip (issue 5) with no code of ours on either client side:
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
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { startTestBroker, type TestBroker } from "../helpers/broker.js";
import { waitFor } from "../helpers/wait.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const PYTHON = "/usr/bin/python3";
const OPERATOR = join(HERE, "slixmpp_commands.py");
const DEVICE = join(HERE, "device.sh");
/** Each step's bound. */
const STEP_MS = 10_000;
const NS_COMMANDS = "http://jabber.org/protocol/commands";
const FORM_TYPE = "urn:xmpp:switchboard:command:thermostat:set_setpoint";
const DEVICE_PASSWORD = "th1 secret";

// --- what slixmpp_commands.py reports ---------------------------------------------

interface Field {
  var: string;
  type: string | null;
  label: string | null;
  required: boolean;
  value: string | string[] | null;
  options: string[];
  validate?: { datatype: string | null; range: { minimum?: string; maximum?: string } | false | null; basic: boolean; regex: string | null };
}
interface Form {
  type: string;
  title: string | null;
  instructions: string | null;
  fields: Field[];
}
/** One answer in a command session: an IQ result or an IQ error. */
interface Step {
  iq?: "result" | "error";
  from?: string;
  status?: string;
  node?: string;
  sessionid?: string | null;
  actions?: string[];
  execute?: string | null;
  notes?: Array<{ type: string; text: string }>;
  form?: Form | null;
  error_type?: string;
  condition?: string;
  text?: string | null;
  specific?: string | null;
  echoed_command?: boolean;
  exception?: string;
}
interface RunReply {
  ok: boolean;
  outcome: string;
  steps: Step[];
  raw_errors: Step[];
}
type Line = Record<string, unknown> & { event?: string; id?: string; ok?: boolean };

/** A child process whose stdout is read line by line, with bounded waits. */
class Proc<L> {
  readonly lines: L[] = [];
  stderr = "";
  exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  readonly exited: Promise<void>;
  private waiters: Array<() => void> = [];

  constructor(
    readonly name: string,
    readonly proc: ChildProcessWithoutNullStreams,
    parse: (line: string) => L,
    private readonly fatal: (l: L) => boolean = () => false,
  ) {
    createInterface({ input: proc.stdout }).on("line", (line) => {
      this.lines.push(parse(line));
      this.wake();
    });
    proc.stderr.setEncoding("utf8");
    proc.stderr.on("data", (d: string) => {
      this.stderr = (this.stderr + d).slice(-20_000);
    });
    proc.stdin.on("error", () => {});
    this.exited = new Promise((resolve) => {
      proc.on("exit", (code, signal) => {
        this.exit = { code, signal };
        this.wake();
        resolve();
      });
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  describe(): string {
    return `\n--- ${this.name} stdout ---\n${this.lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n")}\n--- ${this.name} stderr ---\n${this.stderr.slice(-4000)}`;
  }

  /** The first line from index `from` on (seen already or to come) that matches, within `ms`. */
  async waitFor(what: string, match: (l: L) => boolean, from = 0, ms = STEP_MS): Promise<{ line: L; index: number }> {
    const deadline = Date.now() + ms;
    for (;;) {
      const index = this.lines.findIndex((l, i) => i >= from && match(l));
      if (index >= 0) return { line: this.lines[index]!, index };
      const fatal = this.lines.find(this.fatal);
      if (fatal !== undefined) throw new Error(`${this.name} failed while waiting for ${what}: ${JSON.stringify(fatal)}${this.describe()}`);
      if (this.exit) throw new Error(`${this.name} exited (${JSON.stringify(this.exit)}) while waiting for ${what}${this.describe()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what}${this.describe()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}

/** The operator: slixmpp, JSON lines out, JSON commands in. */
class Operator extends Proc<Line> {
  private nextId = 0;

  constructor(proc: ChildProcessWithoutNullStreams) {
    super(
      "slixmpp",
      proc,
      (line) => {
        try {
          return JSON.parse(line) as Line;
        } catch {
          return { event: "garbage", line };
        }
      },
      (l) => l.event === "fatal" || l.event === "failed_auth",
    );
  }

  /** Sends a command and waits for its reply. */
  async command(cmd: Record<string, unknown>, ms = STEP_MS + 3000): Promise<Line> {
    const id = `c${++this.nextId}`;
    this.proc.stdin.write(JSON.stringify({ ...cmd, id }) + "\n");
    return (await this.waitFor(`the reply to ${JSON.stringify(cmd)}`, (l) => l.id === id, 0, ms)).line;
  }

  /** One XEP-0050 session run by slixmpp's plugin; see slixmpp_commands.py. */
  async run(jid: string, node: string, opts: { values?: Record<string, string>; submit?: "flow" | "direct"; wait?: number } = {}): Promise<RunReply> {
    const reply = await this.command({ cmd: "run", jid, node, values: opts.values ?? null, submit: opts.submit ?? "flow", wait: opts.wait ?? STEP_MS / 1000 });
    if (reply.ok !== true) throw new Error(`slixmpp could not run ${node} at ${jid}: ${JSON.stringify(reply)}${this.describe()}`);
    return reply as unknown as RunReply;
  }

  quit(): void {
    if (this.proc.stdin.writable) this.proc.stdin.end(JSON.stringify({ cmd: "quit" }) + "\n");
  }

  kill(): void {
    if (this.exit === null) this.proc.kill("SIGKILL");
  }
}

/** The device: device.sh (mosquitto_sub + mosquitto_pub) in its own process group. */
class Device extends Proc<string> {
  constructor(port: number, mode: "reply" | "silent") {
    super("device.sh", spawn("bash", [DEVICE, "127.0.0.1", String(port), "th1", DEVICE_PASSWORD, mode], { stdio: ["pipe", "pipe", "pipe"], detached: true }), (l) => l);
  }

  /** The next command mosquitto_sub printed from line `from` on: topic, QoS, parsed payload. */
  async command(from: number): Promise<{ topic: string; qos: string; payload: { id?: unknown; params?: unknown }; raw: string; index: number }> {
    const { line, index } = await this.waitFor("a command at mosquitto_sub", (l) => l.startsWith("command "), from);
    const [, topic = "", qos = "", raw = ""] = /^command (\S+) (\S+) (.*)$/.exec(line) ?? [];
    return { topic, qos, payload: JSON.parse(raw) as { id?: unknown; params?: unknown }, raw, index };
  }

  /** Stops every process of the device (SIGTERM: mosquitto_sub disconnects cleanly). */
  async stop(): Promise<void> {
    if (this.exit !== null || this.proc.pid === undefined) return;
    try {
      process.kill(-this.proc.pid, "SIGTERM");
    } catch {
      return;
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-this.proc.pid!, "SIGKILL");
      } catch {
        /* gone */
      }
    }, 3000);
    await this.exited;
    clearTimeout(timer);
  }
}

const single = (v: string | string[] | null | undefined) => (Array.isArray(v) ? (v.length === 1 ? v[0] : v) : v);
const fieldOf = (form: Form | null | undefined, name: string) => form?.fields.find((f) => f.var === name);

/** A missing Debian tool is a failure, never a skip: .ci/test installs them. */
function missingTools(): string[] {
  const problems: string[] = [];
  const py = spawnSync(PYTHON, ["-c", "import slixmpp, sys; sys.stdout.write(slixmpp.__version__)"], { encoding: "utf8", timeout: STEP_MS });
  if (py.status !== 0)
    problems.push(`slixmpp is not importable by ${PYTHON} (install the Debian package python3-slixmpp; it is only visible to /usr/bin/python3): ${py.error?.message ?? py.stderr.trim()}`);
  for (const tool of ["mosquitto_sub", "mosquitto_pub"]) {
    const r = spawnSync(tool, ["--help"], { encoding: "utf8", timeout: STEP_MS });
    if (r.error || !/mosquitto/.test(`${r.stdout}${r.stderr}`)) problems.push(`${tool} is missing (install the Debian package mosquitto-clients): ${r.error?.message ?? "no usage text"}`);
  }
  for (const tool of ["bash", "stdbuf", "sed"]) {
    const r = spawnSync(tool, ["--version"], { encoding: "utf8", timeout: STEP_MS });
    if (r.error) problems.push(`${tool} is missing: ${r.error.message}`);
  }
  return problems;
}

t.test("a command round trip with slixmpp (xep_0050) and mosquitto_sub/mosquitto_pub only", async (t) => {
  const missing = missingTools();
  if (missing.length) {
    for (const problem of missing) t.fail(problem);
    return;
  }

  let broker: TestBroker | null = null;
  let op: Operator | null = null;
  const devices: Device[] = [];
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
    const d = new Device(b.ports.mqtt, mode);
    devices.push(d);
    return d;
  };

  let dev = startDevice("reply");
  op = new Operator(
    spawn(PYTHON, [OPERATOR, "127.0.0.1", String(b.ports.xmpp), "op1@localhost", "op1 secret", join(b.dataDir, "tls", "cert.pem")], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, PYTHONUNBUFFERED: "1", PYTHONDONTWRITEBYTECODE: "1" },
    }),
  );
  const o = op;

  await t.test("the mosquitto device and the slixmpp operator come online", async (t) => {
    await dev.waitFor("mosquitto_sub's SUBACK", (l) => l === "subscribed");
    t.ok(online(), "th1 is online at th1@localhost/mqtt");
    const start = (await o.waitFor("slixmpp's session", (l) => l.event === "session_start")).line;
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
    const replied = (await dev.waitFor("mosquitto_pub's reply", (l) => /^(replied|reply-failed) /.test(l), cmd.index)).line;
    t.equal(replied, `replied {"id":"${String(cmd.payload.id)}","ok":true,"result":{"setpoint":21.5}}`);

    // Step 2: completed, with the result as a form.
    t.match(done, { iq: "result", from: "th1@localhost", status: "completed", node: "set_setpoint", sessionid: form?.sessionid });
    t.same(done?.notes, [{ type: "info", text: "set_setpoint completed on th1" }]);
    t.equal(done?.form?.type, "result");
    t.equal(single(fieldOf(done?.form, "FORM_TYPE")?.value), FORM_TYPE);
    t.equal(single(fieldOf(done?.form, "setpoint")?.value), "21.5", "setpoint = 21.5");
    t.same(run.raw_errors, []);

    // The answering mosquitto_pub took the session over; mosquitto_sub comes back.
    await dev.waitFor("mosquitto_sub back after the takeover", (l) => l === "subscribed", cmd.index);
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
    const replied = (await dev.waitFor("mosquitto_pub's reply", (l) => /^(replied|reply-failed) /.test(l), cmd.index)).line;
    t.equal(replied, `replied {"id":"${String(cmd.payload.id)}","ok":true,"result":{}}`);
    await dev.waitFor("mosquitto_sub back after the takeover", (l) => l === "subscribed", cmd.index);
  });

  await t.test("a device that disconnects while its command is pending fails it at once", async (t) => {
    await waitFor(online, STEP_MS, "th1 online");
    await dev.stop();
    await waitFor(() => !online(), STEP_MS, "th1 offline");
    dev = startDevice("silent");
    await dev.waitFor("mosquitto_sub's SUBACK", (l) => l === "subscribed");
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
    const gone = (await o.waitFor("disconnect", (l) => l.event === "disconnected")).line;
    t.equal(gone.clean, true);
    await Promise.race([o.exited, new Promise((r) => setTimeout(r, STEP_MS))]);
    t.same(o.exit, { code: 0, signal: null }, `slixmpp exited cleanly${o.exit?.code ? o.describe() : ""}`);
    // Exceptions in slixmpp's handlers or in the script; (asyncio's note about the
    // dropped IqError of the complete_command case above is not one of ours).
    t.notMatch(o.stderr, /ERROR (slixmpp|root)/, "no exception in slixmpp or in the script");
  });
});
