// Interop with a terminal XMPP client no one here wrote: Debian's Profanity (0.13),
// run in a tmux server of its own with an empty HOME, driven by keystrokes and read
// off the screen. Profanity runs `/cmd` only when some disco#info it gathered at
// login lists http://jabber.org/protocol/commands (cmd_command_list and
// cmd_command_exec call connection_supports), pings the server with no `to`
// (stanza_create_ping_iq(ctx, NULL)) and turns autoping off on a `cancel` error
// ("Server ping not supported, autoping disabled."). An operator lists and runs a
// thermostat's commands (the thermostat is the `mqtt` package) and the broker's own
// `list-online-devices`.
import t from "tap";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { startTestBroker, type TestBroker } from "../helpers/broker.js";
import { requireTools, type Tool } from "../helpers/programs.js";
import { waitFor } from "../helpers/wait.js";

/** Each step's bound. */
const STEP_MS = 10_000;
const OPERATOR = { name: "op1", password: "op secret" };
const THERMOSTAT = { name: "th1", password: "th1 secret" };
/** Profanity's texts (src/command/cmd_funcs.c, src/xmpp/iq.c of 0.13.1). */
const NO_COMMANDS = "Server does not support ad hoc commands";
const NO_PING = /ping not supported|autoping disabled/i;

const home = mkdtempSync(join(tmpdir(), "sb-profanity-"));
const socket = `sb-profanity-${process.pid}`;
const env = {
  PATH: process.env.PATH ?? "/usr/bin:/bin",
  HOME: home,
  XDG_CONFIG_HOME: join(home, "config"),
  XDG_DATA_HOME: join(home, "data"),
  XDG_RUNTIME_DIR: home,
  TMUX_TMPDIR: home,
  TERM: "xterm-256color",
  LANG: "C.UTF-8",
};

let broker: TestBroker;
let device: MqttClient | undefined;
let tmuxStarted = false;
/** What the broker saw: the commands the thermostat got, and the pings and disco#info queries from op1. */
const reboots: string[] = [];
const pings: Array<{ to: string | undefined; at: number }> = [];
let discoInfoAsked = false;

t.before(async () => {
  broker = await startTestBroker({}, [
    { ...OPERATOR, role: "operator" },
    { ...THERMOSTAT, role: "device", type: "thermostat" },
  ]);
  const { events } = broker.xmpp.router;
  // Observers only: they claim nothing, the modules under test answer.
  const fromOperator = (from: string) => from.startsWith(`${OPERATOR.name}@localhost/`);
  for (const target of ["host", "bare"])
    events.on(`iq-get/${target}/urn:xmpp:ping:ping`, (e) => void (fromOperator(e.from.toString()) && pings.push({ to: e.stanza.attrs.to, at: Date.now() })), 1000);
  events.on("iq-get/host/http://jabber.org/protocol/disco#info:query", (e) => void (fromOperator(e.from.toString()) && (discoInfoAsked = true)), 1000);

  device = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { clientId: THERMOSTAT.name, username: THERMOSTAT.name, password: THERMOSTAT.password, reconnectPeriod: 0 });
  device.on("error", () => {});
  device.on("message", (topic, payload) => {
    const request = JSON.parse(payload.toString()) as { id: string };
    reboots.push(topic);
    void device!.publishAsync(`devices/${THERMOSTAT.name}/replies`, JSON.stringify({ id: request.id, ok: true, result: {} }), { qos: 1 });
  });
  await device.subscribeAsync(`devices/${THERMOSTAT.name}/commands/#`, { qos: 1 });
});

t.teardown(async () => {
  if (tmuxStarted) tmux("kill-server");
  await device?.endAsync(true);
  await broker?.close();
  rmSync(home, { recursive: true, force: true });
});

function tmux(...args: string[]): string {
  const r = spawnSync("tmux", ["-L", socket, "-f", "/dev/null", ...args], { env, encoding: "utf8", timeout: STEP_MS });
  if (r.error || r.status !== 0) throw new Error(`tmux ${args[0]}: ${r.error?.message ?? r.stderr.trim()}`);
  return r.stdout;
}

/** The current window's screen with its scrollback, lines joined where they wrapped. */
const screen = () => tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "sb");

/** Types `line` into Profanity and presses Enter. */
function type(line: string): void {
  tmux("send-keys", "-t", "sb", "-l", line);
  tmux("send-keys", "-t", "sb", "Enter");
}

/** Polls the screen until `pattern` shows. */
async function shows(pattern: RegExp | string, what: string): Promise<string> {
  const matches = (s: string) => (typeof pattern === "string" ? s.includes(pattern) : pattern.test(s));
  try {
    return await waitFor(() => {
      const s = screen();
      return matches(s) ? s : undefined;
    }, STEP_MS, what);
  } catch (err) {
    throw new Error(`${(err as Error).message}; the screen:\n${screen()}`);
  }
}

t.test("Profanity lists and runs commands on a device and on the domain; its autoping stays on", async (t) => {
  const tools: Tool[] = [
    { command: "profanity", args: ["--version"], debian: "profanity", expect: /Profanity, version/, env },
    { command: "tmux", args: ["-V"], debian: "tmux" },
  ];
  if (!requireTools(t, tools)) return;
  await waitFor(() => [...broker.xmpp.sessions.all()].some((s) => s.full === `${THERMOSTAT.name}@localhost/mqtt` && s.presence), STEP_MS, "the thermostat online");
  mkdirSync(env.XDG_CONFIG_HOME, { recursive: true });
  mkdirSync(env.XDG_DATA_HOME, { recursive: true });
  tmux("new-session", "-d", "-s", "sb", "-x", "200", "-y", "50", "profanity");
  tmuxStarted = true;
  await shows("Type '/help'", "Profanity started");
  // The roster panel would share the console's rows; without it each line is one line of output.
  type("/roster hide");
  await shows(/Roster disabled/i, "roster panel hidden");

  // The broker's certificate is self-signed: `tls trust` takes it as it is (STARTTLS still required).
  type(`/connect ${OPERATOR.name}@localhost server 127.0.0.1 port ${broker.ports.xmpp} tls trust`);
  await shows("Enter password:", "the password prompt");
  type(OPERATOR.password);
  await shows(/op1@localhost\/\S+ logged in successfully/, "logged in");
  // Profanity gathers the features it will check from disco#info at login; a ping round
  // trip after the broker answered the domain's means Profanity has read that answer.
  await waitFor(() => discoInfoAsked, STEP_MS, "Profanity's disco#info of the domain");
  type("/ping");
  await shows(/Ping response from \S+: \d+ms/, "the answer to /ping (no `to`)");
  t.ok(pings.some((p) => p.to === undefined), "Profanity pinged without `to`, and got a result");

  type(`/cmd list ${THERMOSTAT.name}@localhost`);
  const deviceList = await shows(/Ad hoc commands:.*\n.*!\s+reboot\b.*\n.*!\s+set_setpoint\b/, "the thermostat's commands");
  t.notMatch(deviceList, NO_COMMANDS, "Profanity accepted /cmd: the domain advertises the commands feature");

  type(`/cmd exec reboot ${THERMOSTAT.name}@localhost`);
  await shows(/! reboot completed.*\n.*! reboot completed on th1/, "reboot completed");
  t.same(reboots, [`devices/${THERMOSTAT.name}/commands/reboot`], "the thermostat got the reboot over MQTT");

  type("/cmd list localhost");
  await shows(/Ad hoc commands:.*\n.*!\s+list-online-devices\b/, "the broker's own command");

  // The result form opens in a window of its own, which Profanity focuses.
  type("/cmd exec list-online-devices localhost");
  const form = await shows(/Form title: Online devices[\s\S]*\[val1\] th1@localhost thermostat/, "the list of online devices");
  t.notMatch(form, /\[val2\]/, "one device online");
  type("/win 1");
  await shows(/! list-online-devices completed.*\n.*! 1 device online/, "the command's status and note in the console");

  // Autoping every second: several pings without `to`, each answered, and Profanity never gives up on them.
  type("/autoping set 1");
  const since = Date.now();
  await shows("Autoping interval set to 1 seconds", "autoping set");
  await waitFor(() => pings.filter((p) => p.at >= since && p.to === undefined).length >= 3, STEP_MS, "three autopings");
  type("/ping");
  await waitFor(() => (screen().match(/Ping response from/g)?.length ?? 0) >= 2 || undefined, STEP_MS, "a second /ping answered");
  const final = screen();
  t.notMatch(final, NO_PING, "autoping not disabled");
  t.notMatch(final, /Error returned from pinging|Error executing command|Error retrieving command list/);
  const log = join(env.XDG_DATA_HOME, "profanity", "logs", "profanity.log");
  if (existsSync(log)) t.notMatch(readFileSync(log, "utf8"), /Server ping .*(error|disabling)/, "Profanity's log has no ping error");
});
