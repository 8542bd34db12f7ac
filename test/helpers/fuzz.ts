// Seeded fuzzing of one live broker (test/ops/fuzz-*.test.ts): a small PRNG, rounds
// run from many connections at once, and the checks after them: the broker survived
// (an escaped exception would end the process), logged no internal error (a handler
// that threw is a bug even when caught), and serves a good device, service and
// operator as before. Seeds are fixed, so a failure repeats; FUZZ_SEED and
// FUZZ_ROUNDS widen a manual run.
import type { Test } from "tap";
import mqtt from "mqtt";
import { passwordOf, testAccounts } from "./accounts.js";
import { startTestBroker, type TestBroker } from "./broker.js";
import { RawClient } from "./raw.js";
import { waitFor } from "./wait.js";

export const SEED = Number(process.env.FUZZ_SEED ?? 20261121);
export const ROUNDS = Number(process.env.FUZZ_ROUNDS ?? 600);
const PARALLEL = 12;

/** mulberry32: a small seeded PRNG, so every run sends the same bytes. */
export function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return { next, int, pick: <T>(xs: readonly T[]): T => xs[int(xs.length)]!, chance: (p: number) => next() < p };
}
export type Rng = ReturnType<typeof prng>;

export const DEVICES = ["dev1", "dev2", "door1"];
export const ACCOUNTS = testAccounts({ op1: "operator", svc1: "service", dev1: "thermostat", dev2: "thermostat", door1: "door-sensor" });
export const pw = (name: string) => passwordOf(ACCOUNTS, name);

/** Runs ROUNDS rounds against `port`, PARALLEL at a time, each lane with its own seeded PRNG; how many ran. */
async function fuzz(round: (r: Rng, port: number) => Promise<void>, port: number, seed: number): Promise<number> {
  let next = 0;
  const lane = async (laneNo: number) => {
    const r = prng(seed * 31 + laneNo);
    while (next < ROUNDS) {
      next++;
      await round(r, port).catch(() => {});
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, (_, i) => lane(i)));
  return next;
}

const internalErrors = (b: TestBroker) => b.logs.filter((l) => JSON.parse(l).level >= 50);

/** What the broker logged, by message: shows which paths a run reached. */
function reached(b: TestBroker): string {
  const n = new Map<string, number>();
  for (const l of b.logs) {
    const { msg, reason, verdict, condition } = JSON.parse(l) as Record<string, string>;
    const key = [msg, (reason ?? verdict ?? condition)?.replace(/^\d+:\d+: /, "")].filter(Boolean).join(": ").slice(0, 80);
    n.set(key, (n.get(key) ?? 0) + 1);
  }
  return [...n].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${v} × ${k}`).join("\n");
}

async function stillServes(t: Test, b: TestBroker, settleMs = 10_000): Promise<void> {
  // Every fuzzing connection is gone: no device may still look online to anyone.
  const left = () => ({
    mqttClients: Object.keys((b.mqtt.aedes as unknown as { clients: Record<string, unknown> }).clients),
    xmppDeviceSessions: DEVICES.flatMap((d) => b.xmpp.sessions.ofAccount(`${d}@localhost`).map((x) => x.full)),
  });
  await waitFor(
    () => {
      const l = left();
      return l.mqttClients.length === 0 && l.xmppDeviceSessions.length === 0;
    },
    settleMs,
    "fuzzing sessions to end",
  ).catch((err: Error) => {
    throw new Error(`${err.message}: ${JSON.stringify(left())}`);
  });
  const op = await RawClient.connect(b.ports.xmpp);
  await op.login("op1", pw("op1"), { resource: "after", tls: false });
  op.send("<presence/><iq type='get' id='p0' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
  await op.expect(/<iq[^>]*id="p0"/);
  t.notMatch(op.log, /<presence (?![^>]*type=)[^>]*from="(dev1|dev2|door1)@/, "no device left available after the fuzzing");

  const svc = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.ports.mqtt}`, { clientId: "svc1", username: "svc1", password: pw("svc1"), reconnectPeriod: 0 });
  await svc.subscribeAsync("devices/+/telemetry", { qos: 1 });
  // Fuzzed samples may still arrive (retained, or committed after the rounds ended): wait for this one.
  const got = new Promise<string>((resolve) => svc.on("message", (topic, payload) => topic === "devices/dev1/telemetry" && String(payload).includes("21.5") && resolve(String(payload))));
  const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.ports.mqtt}`, { clientId: "dev1", username: "dev1", password: pw("dev1"), reconnectPeriod: 0 });
  await dev.publishAsync("devices/dev1/telemetry", JSON.stringify({ temperature: 21.5, humidity: 40 }), { qos: 1 });
  t.match(await got, /21\.5/, "a good device's sample reaches a service");
  await op.expect(/<presence from="dev1@localhost\/mqtt"/);
  op.send("<iq type='get' id='p1' to='dev1@localhost/mqtt'><ping xmlns='urn:xmpp:ping'/></iq>");
  t.match((await op.expect(/<iq[^>]*id="p1"[^>]*\/>/))[0], /type="result"/, "an operator sees the device come online and its IQ is answered");
  op.close();
  await dev.endAsync();
  await svc.endAsync();
}

// Failures are expected by the thousand here: no delay, so the checks after the fuzz
// are not slowed down by the address's own failure count.
const CONFIG = { auth: { maxFailures: 1000, maxAccountFailures: 1000 }, xmpp: { requireTls: false } };

/** One part: a fresh broker, the rounds against one of its ports, then the checks. */
export function fuzzPart(t: Test, name: string, round: (r: Rng, port: number) => Promise<void>, port: (b: TestBroker) => number, settleMs?: number): void {
  t.test(`${name} (seed ${SEED})`, async (t) => {
    const b = await startTestBroker(CONFIG, ACCOUNTS);
    t.teardown(() => b.close());
    t.equal(await fuzz(round, port(b), SEED), ROUNDS, "every round ran");
    t.same(internalErrors(b), [], "no internal error logged");
    t.comment(reached(b));
    await stillServes(t, b, settleMs);
  });
}
