// The two ends of test/commands/roundtrip.test.ts, neither of them code of ours: the
// operator is python3-slixmpp's xep_0050 plugin (test/commands/slixmpp_commands.py),
// the thermostat is mosquitto_sub and mosquitto_pub glued by test/commands/device.sh.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { JsonLineProcess, LineProcess } from "./line-process.js";
import { spawnPython } from "./programs.js";

const OPERATOR = fileURLToPath(new URL("../commands/slixmpp_commands.py", import.meta.url));
const DEVICE = fileURLToPath(new URL("../commands/device.sh", import.meta.url));
/** Each step's bound. */
export const STEP_MS = 10_000;

// --- what slixmpp_commands.py reports ---------------------------------------------

export interface Field {
  var: string;
  type: string | null;
  label: string | null;
  required: boolean;
  value: string | string[] | null;
  options: string[];
  validate?: { datatype: string | null; range: { minimum?: string; maximum?: string } | false | null; basic: boolean; regex: string | null };
}
export interface Form {
  type: string;
  title: string | null;
  instructions: string | null;
  fields: Field[];
}
/** One answer in a command session: an IQ result or an IQ error. */
export interface Step {
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
export interface RunReply {
  ok: boolean;
  outcome: string;
  steps: Step[];
  raw_errors: Step[];
}

/** A field's value: the one value of a single-valued field. */
export const single = (v: string | string[] | null | undefined) => (Array.isArray(v) ? (v.length === 1 ? v[0] : v) : v);
export const fieldOf = (form: Form | null | undefined, name: string) => form?.fields.find((f) => f.var === name);

/** The operator: slixmpp_commands.py logged in on 127.0.0.1:`port`, trusting only `cafile`. */
export class CommandOperator extends JsonLineProcess {
  constructor(port: number, jid: string, password: string, cafile: string) {
    super("slixmpp", spawnPython(OPERATOR, ["127.0.0.1", String(port), jid, password, cafile]), ["fatal", "failed_auth"], STEP_MS);
  }

  /** Sends a command and waits for its reply (longer than a command's own bound). */
  override command(cmd: Record<string, unknown>, ms = STEP_MS + 3000) {
    return super.command(cmd, ms);
  }

  /** One XEP-0050 session run by slixmpp's plugin; see slixmpp_commands.py. */
  async run(jid: string, node: string, opts: { values?: Record<string, string>; submit?: "flow" | "direct"; wait?: number } = {}): Promise<RunReply> {
    const reply = await this.command({ cmd: "run", jid, node, values: opts.values ?? null, submit: opts.submit ?? "flow", wait: opts.wait ?? STEP_MS / 1000 });
    if (reply.ok !== true) throw new Error(`slixmpp could not run ${node} at ${jid}: ${JSON.stringify(reply)}${this.describe()}`);
    return reply as unknown as RunReply;
  }
}

/** The device: device.sh (mosquitto_sub + mosquitto_pub) in its own process group. */
export class ShellDevice extends LineProcess<string> {
  constructor(port: number, id: string, password: string, mode: "reply" | "silent") {
    super("device.sh", spawn("bash", [DEVICE, "127.0.0.1", String(port), id, password, mode], { stdio: ["pipe", "pipe", "pipe"], detached: true }), (l) => l, undefined, STEP_MS);
  }

  /** The next command mosquitto_sub printed from line `from` on: topic, QoS, parsed payload. */
  async command(from: number): Promise<{ topic: string; qos: string; payload: { id?: unknown; params?: unknown }; raw: string; index: number }> {
    const { line, index } = await this.waitFor("a command at mosquitto_sub", (l) => l.startsWith("command "), from);
    const [, topic = "", qos = "", raw = ""] = /^command (\S+) (\S+) (.*)$/.exec(line) ?? [];
    return { topic, qos, payload: JSON.parse(raw) as { id?: unknown; params?: unknown }, raw, index };
  }

  /** The line mosquitto_pub's reply left after line `from`: `replied …` or `reply-failed …`. */
  async reply(from: number): Promise<string> {
    return (await this.waitFor("mosquitto_pub's reply", (l) => /^(replied|reply-failed) /.test(l), from)).line;
  }

  /** Waits for mosquitto_sub's SUBACK after line `from`: online and listening. */
  async subscribed(from = 0): Promise<void> {
    await this.waitFor("mosquitto_sub's SUBACK", (l) => l === "subscribed", from);
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
