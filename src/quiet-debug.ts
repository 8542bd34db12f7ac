// mqtt-packet, which parses and writes every MQTT packet for aedes, calls the `debug`
// package 58 times in its code paths: several calls per packet, each allocating its
// arguments and checking the namespace even when the namespace is off. That was
// ~2.5 % of the event loop in the telemetry pipeline (docs/benchmarks.md). Its
// loggers are made once, when mqtt-packet loads; this module, imported before
// aedes, hands it a function that does nothing for a namespace not enabled in
// DEBUG at start-up. With DEBUG=mqtt-packet:* the real logger is made as before.
// The broker's own logging is pino (src/log.ts) and is not affected.
import { createRequire } from "node:module";

type Factory = ((namespace: string) => unknown) & { enabled(namespace: string): boolean };

const require = createRequire(import.meta.url);
const mqttPacket = createRequire(require.resolve("aedes")).resolve("mqtt-packet");
const debugPath = createRequire(mqttPacket).resolve("debug");
const createDebug = require(debugPath) as Factory;
const silent = () => {};
const cached = require.cache[debugPath];
if (cached && !(createDebug as { quieted?: boolean }).quieted) {
  const factory = Object.assign((namespace: string) => (namespace.startsWith("mqtt-packet:") && !createDebug.enabled(namespace) ? silent : createDebug(namespace)), createDebug, { quieted: true });
  cached.exports = factory;
}
