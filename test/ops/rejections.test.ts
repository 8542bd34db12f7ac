// No unhandled rejections: a pubsub publish whose ingest fails is answered with an IQ
// error and the broker goes on; and the running broker's process-level handler turns
// a rejection nobody handled into one JSON log line instead of the end of the process.
import t from "tap";
import { spawn } from "node:child_process";
import { Writable } from "node:stream";
import { z } from "zod";
import { startTestBroker } from "../helpers/broker.js";
import { RawClient } from "../helpers/raw.js";
import { childEnv, lines, ROOT } from "../helpers/cli.js";
import { waitFor } from "../helpers/wait.js";
import { deviceTypes } from "../../devices/index.js";
import { defineDeviceType } from "../../devices/types.js";
import { createLogger } from "../../src/log.js";
import { logUnhandledRejection } from "../../src/unhandled-rejection.js";

t.setTimeout(120_000);

// A type whose validation step throws (as a bug in a step would): the ingest rejects
// instead of answering with a verdict.
const faulty = defineDeviceType({
  name: "faulty",
  description: "test type whose telemetry step fails",
  telemetry: z.strictObject({ value: z.number() }).refine(() => {
    throw new Error("injected: the ingest step failed");
  }),
  commands: {},
  measurement: "faulty",
  tags: [],
  units: {},
});

const publishIq = (id: string, device: string, json: string) =>
  `<iq type='set' id='${id}' to='pubsub.localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='telemetry/${device}'><item><json xmlns='urn:xmpp:json:0'>${json}</json></item></publish></pubsub></iq>`;

t.test("a pubsub publish whose ingest fails gets internal-server-error; the broker and the stream go on", async (t) => {
  const broker = await startTestBroker(
    {},
    [
      { name: "f1", role: "device", type: "faulty", password: "pw" },
      { name: "door1", role: "device", type: "door-sensor", password: "pw" },
    ],
    { deviceTypes: [...deviceTypes, faulty] },
  );
  t.teardown(() => broker.close());
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => void unhandled.push(reason);
  process.on("unhandledRejection", onUnhandled);
  t.teardown(() => void process.off("unhandledRejection", onUnhandled));

  const dev = await RawClient.connect(broker.ports.xmpp);
  t.teardown(() => dev.close());
  await dev.login("f1", "pw");
  dev.send(publishIq("p1", "f1", '{"value":1}'));
  const [reply] = await dev.expect(/<iq[^>]*id="p1"[\s\S]*?<\/iq>/);
  t.match(reply, /type="error"/, "an IQ error");
  t.match(reply, /<error type="wait"><internal-server-error xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"\/>/, "internal-server-error, type wait (try again)");

  // The same stream still works, and so does another device's publish.
  dev.send("<iq type='get' id='ping1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
  await dev.expect(/<iq[^>]*(id="ping1"[^>]*type="result"|type="result"[^>]*id="ping1")/);
  const door = await RawClient.connect(broker.ports.xmpp);
  t.teardown(() => door.close());
  await door.login("door1", "pw");
  door.send(publishIq("p2", "door1", '{"open":true}'));
  const [ok] = await door.expect(/<iq[^>]*id="p2"[\s\S]*?(\/>|<\/iq>)/);
  t.match(ok, /type="result"/, "another device's sample is accepted");

  const logged = await waitFor(() => broker.logs.map((l) => JSON.parse(l) as Record<string, any>).find((l) => l.msg === "telemetry ingest failed"), 5000, "the failure logged");
  t.equal(logged.level, 50, "logged as an error");
  t.equal(logged.device, "f1");
  t.match(logged.err, { message: "injected: the ingest step failed" });
  t.same(unhandled, [], "no unhandled rejection in the broker's process");
});

t.test("the handler logs one JSON error line with the reason and its stack", async (t) => {
  const out: string[] = [];
  const log = createLogger(new Writable({ write: (chunk, _enc, done) => (out.push(...String(chunk).split("\n").filter(Boolean)), done()) }));
  const handler = logUnhandledRejection(log);
  handler(new Error("lost in a promise"));
  handler("a bare string");
  handler({ code: 7, detail: { where: "deep" } });
  await waitFor(() => out.length >= 3 || undefined, 2000, "three lines");
  const [first, second, third] = out.map((l) => JSON.parse(l) as Record<string, any>);
  t.match(first, { level: 50, msg: "unhandled rejection", reason: "lost in a promise", err: { type: "Error", message: "lost in a promise" } });
  t.match(first!.err.stack, /^Error: lost in a promise\n\s+at /, "with the stack");
  t.match(second, { level: 50, msg: "unhandled rejection", reason: "'a bare string'" });
  t.match(third, { level: 50, msg: "unhandled rejection", reason: "{ code: 7, detail: { where: 'deep' } }" });
});

t.test("with the handler installed, a rejection nobody handles is one log line and the process goes on", async (t) => {
  // What `switchboard start` installs (src/main.ts), in a process of its own.
  const script = [
    `import { createLogger } from ${JSON.stringify(`${ROOT}src/log.ts`)};`,
    `import { handleUnhandledRejections } from ${JSON.stringify(`${ROOT}src/unhandled-rejection.ts`)};`,
    "handleUnhandledRejections(createLogger());",
    "Promise.reject(new Error('nobody handles this'));",
    "setTimeout(() => { process.stderr.write('still running\\n'); }, 300);",
  ].join("\n");
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: ROOT, env: childEnv(), stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.once("close", (c) => resolve(c)));
  t.equal(code, 0, `exit 0 (stderr: ${stderr.trim()})`);
  t.equal(stderr, "still running\n", "still running after the rejection; nothing else on stderr");
  const logged = lines(stdout).map((l) => JSON.parse(l) as Record<string, any>);
  t.equal(logged.length, 1, "one log line");
  t.match(logged[0], { level: 50, msg: "unhandled rejection", reason: "nobody handles this", err: { message: "nobody handles this", stack: /at / } });
});
