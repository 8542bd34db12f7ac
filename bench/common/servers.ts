// The servers the MQTT, telemetry, commands and bridge benches start: Debian's
// Mosquitto, a bare aedes, Switchboard and Debian's InfluxDB, each a private
// instance on free loopback ports with config, data and log in a directory of
// the bench's work dir. Packaged system services are never used or touched.
// One module per server; server-process.ts is how each runs and is stopped.
import type { Server } from './server-process.js';

export { freePort, installCleanup, killAll, RAISE_NOFILE, type Server } from './server-process.js';
export { MOSQUITTO, mosquittoVersion, startMosquitto } from './mosquitto.js';
export { startAedes } from './aedes.js';
export { INFLUXD, influxVersion, startInflux, type Influx } from './influxd.js';
export {
  REPO, SWITCHBOARD_BIN, metric, otherCheckout, provisionSwitchboard, startSwitchboard,
  type StartOptions, type SwitchboardAccounts, type TsdbOptions,
} from './switchboard.js';
export { buildSwitchboard, gitDescribe, prepareSwitchboard } from './build.js';

/** Starts the servers in order, runs fn with them, and stops them in reverse order whatever happens. */
export async function withServers<T>(servers: Array<() => Promise<Server>>, fn: (s: Server[]) => Promise<T>): Promise<T> {
  const started: Server[] = [];
  try {
    for (const s of servers) started.push(await s());
    return await fn(started);
  } finally {
    for (const s of started.reverse()) await s.stop();
  }
}
