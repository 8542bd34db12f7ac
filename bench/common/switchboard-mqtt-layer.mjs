// Switchboard's MQTT layer alone, for issue 3's QoS 1 target ("QoS 1 with auth, ACL
// and presence ≥ 0.8 × bare aedes"): the broker's own built modules (dist/), wired
// for MQTT as src/index.ts wires them (the registry, the hashing threads and the
// authenticator, the per-address failure limiter, the XMPP router and presence
// that MQTT devices appear in, the MQTT bridge with its guard, ACL, byte shaping and
// connection-rate limit, all from the config's defaults) except for one part: the
// telemetry pipeline of issue 4 (parse, validate, spool commit, store) answers
// every sample "accepted" at once. What it measures is what issue 3 adds to aedes;
// the whole broker, pipeline included, is `switchboard` in bench/mqtt.
//
//   node bench/common/switchboard-mqtt-layer.mjs CONFIG [CHECKOUT]
//
// CHECKOUT: another built checkout whose dist/ to run (an A/B). Prints the broker's
// usual JSON "listening" line with the MQTT port.
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [configFile, checkout = new URL('../..', import.meta.url).pathname] = process.argv.slice(2);
const dist = (path) => import(pathToFileURL(join(checkout, 'dist', path)).href);
// First, as src/cli.ts imports it (a checkout from before 22 November 2026 has none).
await dist('src/quiet-debug.js').catch(() => {});
const [{ loadConfig }, { createLogger }, { openSqliteRegistry }, { startHashPool }, { createAuthenticator }, { createFailureLimiter },
  { connectionRateLimiter }, { createXmppServer }, { createDeviceAgent }, { mqttPresence }, { startMqtt }, { limitShapes, mqttOptions }] = await Promise.all([
  dist('src/config.js'), dist('src/log.js'), dist('src/registry/sqlite.js'), dist('src/auth/hash-pool.js'), dist('src/auth/credentials.js'),
  dist('src/auth/limiter.js'), dist('src/limits.js'), dist('src/xmpp/server.js'), dist('src/xmpp/modules/device-agent.js'),
  dist('bridges/mqtt/presence.js'), dist('bridges/mqtt/broker.js'), dist('src/index.js'),
]);

const config = loadConfig(configFile);
const log = createLogger();
const registry = openSqliteRegistry({ dataDir: resolve(config.dataDir) });
const hashPool = await startHashPool({ threads: config.auth.hashThreads, nice: config.auth.hashNice });
const auth = createAuthenticator({ registry, domain: config.domain, iterations: config.auth.scramIterations, verifiedCacheSize: config.auth.verifiedCacheSize, hashPool });
// A checkout with failed-login bans (src/auth/login.js) takes a login; an older one a delaying limiter.
const { createLogin } = await dist('src/auth/login.js').catch(() => ({}));
const limiter = createLogin
  ? createFailureLimiter({ maxFailures: config.auth.maxFailures, maxAccountFailures: config.auth.maxAccountFailures, windowMs: config.auth.failureWindowMs, banMs: config.auth.banMs })
  : createFailureLimiter({ freeFailures: config.auth.failuresBeforeDelay, delayMs: config.auth.failureDelayMs });
const login = createLogin?.({ auth, limiter });
const { serviceShape } = limitShapes(config);
const xmpp = createXmppServer({
  options: { domain: config.domain, requireTls: false, maxStanzaBytes: config.xmpp.maxStanzaBytes, negotiationTimeoutMs: config.xmpp.negotiationTimeoutMs, serviceShape },
  registry, auth, limiter, login, log,
});
const agent = createDeviceAgent({ router: xmpp.router });
const presence = mqttPresence({ router: xmpp.router, presence: xmpp.presence, agent });
const connections = connectionRateLimiter(config.limits.connectionsPerSecond, config.limits.connectionBurst);
// Every sample accepted at once: the pipeline of issue 4 is not what this measures.
const accepted = { ok: true };
const mqtt = await startMqtt({
  // TCP only (the bench's config has no TLS port), so no certificate.
  options: { ...mqttOptions(config, { cert: '', key: '' }, (address) => connections.allow(address)), tlsPort: null },
  auth, limiter, login, presence,
  telemetry: (_device, _payload, done) => done(accepted),
  onReply: () => {},
  log,
});
log.info({ mqtt: mqtt.ports.mqtt, native: hashPool.native }, 'listening');

const stop = async () => {
  await mqtt.close();
  await hashPool.close();
  registry.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
