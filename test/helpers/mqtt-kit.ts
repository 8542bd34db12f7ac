// A broker for MQTT tests with `mqtt` package clients (a client no one here wrote):
// each one records what it received, every wait is bounded, and close() ends them all
// with the broker.
import type { Test } from "tap";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { passwordOf, testAccounts } from "./accounts.js";
import { startTestBroker, type TestAccount, type TestBroker } from "./broker.js";
import { Wakeup, withTimeout } from "./wait.js";

/** The bound of every single wait. */
export const STEP_MS = 10_000;

/** A service, an operator and three thermostats. */
export const MQTT_ACCOUNTS = testAccounts({ svc: "service", op1: "operator", dev1: "thermostat", dev2: "thermostat", dev3: "thermostat" });

/** Valid thermostat telemetry (temperature and humidity are required, docs/device-types.md). */
export const telemetry = (temperature = 21, extra: Record<string, unknown> = {}) => JSON.stringify({ temperature, humidity: 40, ...extra });

/** Settings for a broker whose tests fail logins on purpose: no slow-down for them. */
export const NO_SLOWDOWN = { auth: { maxFailures: 1000, maxAccountFailures: 1000 } };

/** MQTT 3.1.1, no reconnecting, a bounded CONNECT. */
export const MQTT_OPTIONS: IClientOptions = { reconnectPeriod: 0, connectTimeout: STEP_MS, protocolVersion: 4 };

export interface Msg {
  topic: string;
  payload: string;
  at: number;
}

/** An `mqtt` package client with everything it received, and bounded waits. */
export class Peer {
  readonly msgs: Msg[] = [];
  closed = false;
  private readonly arrivals = new Wakeup();

  constructor(readonly c: MqttClient) {
    c.on("message", (topic, payload) => {
      this.msgs.push({ topic, payload: payload.toString("utf8"), at: performance.now() });
      this.arrivals.wake();
    });
    c.on("close", () => {
      this.closed = true;
      this.arrivals.wake();
    });
    c.on("error", () => {});
  }

  wait(what: string, match: (m: Msg) => boolean, ms = STEP_MS): Promise<Msg> {
    return this.arrivals.until(
      () => this.msgs.find(match),
      ms,
      () => new Error(`timed out after ${ms} ms waiting for ${what}; received: ${JSON.stringify(this.msgs.slice(-10))}`),
    );
  }

  on(topic: string): Msg[] {
    return this.msgs.filter((m) => m.topic === topic);
  }

  end(): Promise<void> {
    return withTimeout(this.c.endAsync(), `${this.c.options.clientId} disconnects`);
  }
}

export type MqttKit = Awaited<ReturnType<typeof startMqttKit>>;

/** A test broker (see startTestBroker) with `accounts`, and the clients' side of it. */
export async function startMqttKit(overrides: Record<string, unknown> = {}, accounts: TestAccount[] = MQTT_ACCOUNTS) {
  const broker = await startTestBroker(overrides, accounts);
  if (broker.ports.mqtt === null) throw new Error("the MQTT listener is off");
  const port = broker.ports.mqtt;
  const clients: MqttClient[] = [];
  const pw = (name: string) => passwordOf(accounts, name);
  const tcpUrl = `mqtt://127.0.0.1:${port}`;
  const wsUrl = `ws://127.0.0.1:${broker.ports.http}/mqtt`;

  /** Ends every client connected through the kit. */
  const endClients = () => {
    for (const c of clients) c.end(true);
  };

  async function connect(url: string, opts: IClientOptions): Promise<Peer> {
    const c = await withTimeout(mqtt.connectAsync(url, { ...MQTT_OPTIONS, ...opts }), `MQTT connect ${url} as ${opts.username}`);
    clients.push(c);
    return new Peer(c);
  }

  return {
    broker,
    port,
    tcpUrl,
    wsUrl,
    pw,
    connect,
    /** The device `id` over TCP: client id = user name = device id. */
    device: (id: string, opts: IClientOptions = {}) => connect(tcpUrl, { clientId: id, username: id, password: pw(id), ...opts }),
    /** The service account over TCP, with a client id of its own. */
    service: (clientId = `svc-${Math.random().toString(36).slice(2, 8)}`) => connect(tcpUrl, { clientId, username: "svc", password: pw("svc") }),
    /** Keeps `c` to be ended by close(). */
    track(c: MqttClient): MqttClient {
      clients.push(c);
      return c;
    },
    /** Connects and expects a refusal; returns the CONNACK return code. */
    async refusal(opts: IClientOptions, url = tcpUrl): Promise<number> {
      const outcome = await withTimeout(
        mqtt.connectAsync(url, { ...MQTT_OPTIONS, ...opts }).then(
          (c) => (c.end(true), { accepted: true as const }),
          (err: { code?: number; message?: string }) => ({ accepted: false as const, code: err.code, message: err.message }),
        ),
        `refused connect as ${opts.username}`,
      );
      if (outcome.accepted) throw new Error(`CONNECT as ${JSON.stringify({ clientId: opts.clientId, username: opts.username })} was accepted`);
      if (typeof outcome.code !== "number") throw new Error(`no CONNACK return code: ${outcome.message}`);
      return outcome.code;
    },
    endClients,
    async close(): Promise<void> {
      endClients();
      await broker.close();
    },
  };
}

/** A service subscribed to every device's telemetry. */
export async function telemetryWatcher(kit: MqttKit): Promise<Peer> {
  const svc = await kit.service();
  await withTimeout(svc.c.subscribeAsync("devices/+/telemetry", { qos: 1 }), "service subscribes");
  return svc;
}

/**
 * One SUBSCRIBE with several filters; returns each filter's SUBACK return code
 * (0x80 = refused, §3.9.3). The mqtt package reports a refused filter as an error
 * carrying the SUBACK packet, whose codes are in the order of the filters.
 */
export function suback(c: MqttClient, filters: Record<string, 0 | 1>): Promise<Record<string, number>> {
  const topics = Object.keys(filters);
  const request = Object.fromEntries(topics.map((f) => [f, { qos: filters[f]! }]));
  return withTimeout(
    new Promise((resolve, reject) => {
      c.subscribe(request, (err, _granted, packet) => {
        const codes = (packet as { granted?: number[] } | undefined)?.granted ?? (err as { packet?: { granted?: number[] } } | null)?.packet?.granted;
        if (!codes || codes.length !== topics.length) return reject(err ?? new Error(`no SUBACK codes: ${JSON.stringify(packet)}`));
        resolve(Object.fromEntries(topics.map((f, i) => [f, codes[i]!])));
      });
    }),
    `SUBSCRIBE ${topics.join(", ")}`,
  );
}

/** Proof that the broker still serves others: a device publishes, a service receives it. */
export async function stillServing(t: Test, dev: Peer, svc: Peer, id: string, temperature: number): Promise<void> {
  t.notOk(dev.closed, `${id} is still connected`);
  const payload = telemetry(temperature);
  await withTimeout(dev.c.publishAsync(`devices/${id}/telemetry`, payload, { qos: 1 }), `${id} publishes (PUBACK)`);
  await svc.wait(`${id}'s telemetry at the service`, (m) => m.topic === `devices/${id}/telemetry` && m.payload === payload);
  t.pass(`${id} publishes and the service receives it`);
}
