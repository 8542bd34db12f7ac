// docs/configuration.md: one YAML or JSON file, validated at start; unknown keys are errors
// and every error names its key, so a typo never passes silently.
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { compileTemplate, filtersOverlap, templateProblem } from "./topic-templates.js";

const port = z.number().int().min(0).max(65535);
const host = z.string().min(1);
const positiveInt = z.number().int().positive();
const domainName = z
  .string()
  .regex(/^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/, "must be a lowercase DNS name");

const bridgeSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, "must match [a-z0-9][a-z0-9._-]{0,63}"),
  url: z.string().regex(/^(mqtts?|wss?):\/\/[^/\s]+/, "must be an mqtt://, mqtts://, ws:// or wss:// URL"),
  username: z.string().optional(),
  password: z.string().optional(),
  clientId: z.string().min(1).max(64).optional(),
  tls: z
    .strictObject({ ca: z.string().optional(), cert: z.string().optional(), key: z.string().optional(), rejectUnauthorized: z.boolean().default(true) })
    .optional(),
  qos: z.union([z.literal(0), z.literal(1)]).default(1),
  /** The type of every device of this bridge, unless a template carries {type}. */
  deviceType: z.string().optional(),
  topics: z.strictObject({
    telemetry: z.string().min(1),
    status: z.string().min(1).optional(),
    commands: z.string().min(1).optional(),
    replies: z.string().min(1).optional(),
    errors: z.string().min(1).optional(),
  }),
  autoProvision: z.boolean().default(false),
  /** A required bridge that is down makes the broker not ready. */
  required: z.boolean().default(false),
});

/** docs/cluster.md: several nodes sharing Redis and PostgreSQL. */
const clusterSchema = z.strictObject({
  nodeId: z.string().regex(/^[a-z0-9-]{1,32}$/, "must match [a-z0-9-]{1,32}"),
  redis: z.strictObject({ url: z.string().regex(/^rediss?:\/\/\S+$/, "must be a redis:// or rediss:// URL") }),
  postgres: z.strictObject({ url: z.string().regex(/^postgres(ql)?:\/\/\S+$/, "must be a postgres:// or postgresql:// URL") }),
  // A node's liveness key in Redis is refreshed this often; silent this long, it is dead.
  heartbeatMs: positiveInt.default(1000),
  nodeTimeoutMs: positiveInt.default(5000),
});

export const configSchema = z.strictObject({
  domain: domainName.default("localhost"),
  dataDir: z.string().min(1).default("./data"),
  xmpp: z
    .strictObject({
      host: host.default("0.0.0.0"),
      port: port.default(5222),
      requireTls: z.boolean().default(true),
      tls: z
        .strictObject({ cert: z.string().min(1), key: z.string().min(1) })
        .optional(),
      maxStanzaBytes: positiveInt.min(1024).default(65536),
      // Prosody's and ejabberd's pre-auth limits are the model: small stanzas and a
      // bounded negotiation time before a client has proved who it is.
      maxPreAuthStanzaBytes: positiveInt.min(512).default(10000),
      // Deepest element nesting a stanza may have (the stream element not counted).
      maxDepth: positiveInt.min(4).max(1000).default(64),
      negotiationTimeoutMs: positiveInt.default(60000),
      // XMPP over WebSocket has no STARTTLS: TLS ends in front (a reverse proxy). A
      // connection from these addresses counts as confidential, like Prosody's
      // secure_interfaces; the default is the proxy on the same host (and a local console).
      websocketSecureFrom: z.array(z.string().min(1)).default(["127.0.0.1", "::1", "::ffff:127.0.0.1"]),
      // Behind a TCP load balancer: each connection opens with its PROXY protocol header (src/proxy-protocol.ts).
      proxyProtocol: z.boolean().default(false),
    })
    .prefault({}),
  mqtt: z
    .strictObject({
      host: host.default("0.0.0.0"),
      port: port.default(1883),
      tlsPort: port.nullable().default(8883),
      // As xmpp.proxyProtocol, on the TCP and TLS ports.
      proxyProtocol: z.boolean().default(false),
      maxPacketBytes: positiveInt.default(65536),
      // Backpressure (see bridges/mqtt/guard.ts, docs/mqtt.md).
      outboundHighWaterBytes: positiveInt.default(1024 * 1024),
      slowConsumerTimeoutMs: positiveInt.default(30_000),
    })
    .prefault({}),
  http: z
    .strictObject({
      host: host.default("0.0.0.0"),
      port: port.default(5280),
    })
    .prefault({}),
  tsdb: z
    .strictObject({
      kind: z.enum(["embedded", "influx"]).default("embedded"),
      influx: z
        .strictObject({
          url: z.url().default("http://127.0.0.1:8086"),
          database: z.string().min(1).default("switchboard"),
          // A request with no answer by then fails, and the drainer retries it.
          timeoutMs: positiveInt.default(10_000),
        })
        .prefault({}),
      batchSize: positiveInt.default(5000),
      flushMs: positiveInt.default(1000),
      // Accepted samples wait here while the store is away; past the cap new ones are refused.
      spoolMaxBytes: positiveInt.default(1024 * 1024 * 1024),
      // On shutdown, how long to keep draining before leaving the rest for the next start.
      shutdownFlushMs: z.number().int().min(0).default(5000),
    })
    .prefault({}),
  commands: z.strictObject({ timeoutMs: positiveInt.default(10000) }).prefault({}),
  // Shapers (docs/operations.md, "Limits"). Defaults are generous: far above a device's or an operator's
  // needs, and above what the benchmarks drive through one connection.
  limits: z
    .strictObject({
      bytesPerSecond: positiveInt.default(1024 * 1024),
      burstBytes: positiveInt.default(4 * 1024 * 1024),
      // Service accounts, once authenticated: a backend commanding a fleet over one
      // connection sends far more than any device (5,000 XEP-0050 commands/s ≈ 1.7 MB/s).
      serviceBytesPerSecond: positiveInt.default(16 * 1024 * 1024),
      serviceBurstBytes: positiveInt.default(64 * 1024 * 1024),
      connectionsPerSecond: positiveInt.default(500),
      // A TLS handshake (MQTT over TLS, XMPP STARTTLS) not finished in this time closes the socket.
      tlsHandshakeMs: positiveInt.default(10_000),
      connectionBurst: positiveInt.default(20000),
    })
    .prefault({}),
  bridges: z.array(bridgeSchema).default([]),
  cluster: clusterSchema.optional(),
  auth: z
    .strictObject({
      // RFC 7677 §4 asks for at least 4096 PBKDF2 iterations.
      scramIterations: positiveInt.min(4096).default(4096),
      // Failed-login bans (src/auth/limiter.ts): this many failures from one address
      // (or for one account) within failureWindowMs refuse it for banMs.
      maxFailures: positiveInt.default(10),
      maxAccountFailures: positiveInt.default(10),
      failureWindowMs: positiveInt.default(600_000),
      banMs: positiveInt.default(600_000),
      // Verified passwords remembered (keyed digests) so reconnects skip PBKDF2; 0 = off.
      verifiedCacheSize: z.number().int().min(0).default(100_000),
      // Threads that check passwords (PBKDF2), and how much they yield to the event
      // loop and the rest of the machine (nice, 0–19): src/auth/hash-pool.ts.
      hashThreads: z.number().int().min(1).max(64).default(availableParallelism()),
      hashNice: z.number().int().min(0).max(19).default(10),
    })
    .prefault({}),
});

export type Config = z.infer<typeof configSchema>;
export type BridgeConfig = Config["bridges"][number];

export class ConfigError extends Error {
  readonly code = "SB_ERR_CONFIG";
}

/** One line per problem, each naming the key: `config: xmpp.port: expected ...`. */
export function formatIssues(error: z.ZodError, source: string): string {
  return error.issues
    .map((issue) => {
      const key = issue.path.join(".") || "(root)";
      const keys = issue.code === "unrecognized_keys" ? issue.keys.map((k) => (issue.path.length ? `${key}.${k}` : k)) : null;
      if (keys) return `${source}: unknown key ${keys.map((k) => `'${k}'`).join(", ")}`;
      return `${source}: ${key}: ${issue.message}`;
    })
    .join("\n");
}

/** docs/bridges.md: every template usable, no two bridges reading the same topics; a cluster stores telemetry in InfluxDB. */
const checkedSchema = configSchema.superRefine((config, ctx) => {
  if (config.cluster && config.tsdb.kind === "embedded")
    ctx.addIssue({ code: "custom", path: ["tsdb", "kind"], message: "a cluster needs the shared store: set tsdb.kind to influx (each node's embedded store would hold a different part of the data)" });
  if (config.cluster && config.cluster.nodeTimeoutMs <= config.cluster.heartbeatMs)
    ctx.addIssue({ code: "custom", path: ["cluster", "nodeTimeoutMs"], message: "must be longer than cluster.heartbeatMs" });
  const seen: Array<{ bridge: string; url: string; filter: string; key: string }> = [];
  const names = new Set<string>();
  config.bridges.forEach((bridge, i) => {
    const at = (...path: string[]) => ["bridges", i, ...path];
    if (names.has(bridge.name)) ctx.addIssue({ code: "custom", path: at("name"), message: `bridge '${bridge.name}': the name is used twice` });
    names.add(bridge.name);
    const carriesType = Object.values(bridge.topics).some((t) => t?.includes("{type}"));
    if (!bridge.deviceType && !carriesType) ctx.addIssue({ code: "custom", path: at("deviceType"), message: `bridge '${bridge.name}': name a deviceType or put {type} in a template` });
    for (const [key, template] of Object.entries(bridge.topics)) {
      if (!template) continue;
      const problem = templateProblem(template, key === "commands" ? ["device", "command"] : ["device"]);
      if (problem) ctx.addIssue({ code: "custom", path: at("topics", key), message: `bridge '${bridge.name}': template '${template}' ${problem}` });
      const filter = compileTemplate(template).filter;
      for (const other of seen)
        if (other.url === bridge.url && filtersOverlap(other.filter, filter))
          ctx.addIssue({ code: "custom", path: at("topics", key), message: `bridge '${bridge.name}': '${template}' maps the same topics as bridge '${other.bridge}' ${other.key}` });
      seen.push({ bridge: bridge.name, url: bridge.url, filter, key: `topics.${key}` });
    }
  });
});

export function parseConfig(raw: unknown, source = "config"): Config {
  const result = checkedSchema.safeParse(raw ?? {});
  if (!result.success) throw new ConfigError(formatIssues(result.error, source));
  return result.data;
}

export function loadConfig(file?: string): Config {
  if (!file) return parseConfig({});
  const path = resolve(file);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(`${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let raw: unknown;
  try {
    // YAML 1.2 is a superset of JSON, so one parser reads both formats.
    raw = parseYaml(text, { uniqueKeys: true });
  } catch (err) {
    throw new ConfigError(`${file}: not valid YAML or JSON: ${(err as Error).message.split("\n")[0]}`);
  }
  if (raw !== null && raw !== undefined && (typeof raw !== "object" || Array.isArray(raw)))
    throw new ConfigError(`${file}: (root): expected a mapping of keys`);
  return parseConfig(raw, file);
}
