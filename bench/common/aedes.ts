// Bare aedes as a server under test (bench/common/aedes-server.mjs): the floor of
// what an MQTT broker in Node costs on this machine.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './switchboard.js';
import { isAlive, listeningLine, onListening, spawnServer, stopSpawned, type Server } from './server-process.js';

/** aedes as in its README: createBroker() with defaults, net.createServer(handle). */
export async function startAedes(dir: string, opts: { noDelay?: boolean } = {}): Promise<Server> {
  mkdirSync(dir, { recursive: true });
  const logFile = join(dir, 'aedes.log');
  const l = onListening();
  const script = join(REPO, 'bench', 'common', 'aedes-server.mjs');
  const p = spawnServer(`${process.execPath} ${script}`, { cwd: REPO, logFile, onLine: l.onLine, env: { NODELAY: opts.noDelay ? '1' : '0' } });
  const rec = await listeningLine(p, l.line, 'aedes');
  return { name: 'aedes', pid: p.pid, ports: { mqtt: rec.mqtt as number }, logFile, alive: () => isAlive(p), stop: () => stopSpawned(p) };
}
