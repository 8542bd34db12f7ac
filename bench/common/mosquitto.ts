// Debian's Mosquitto as a server under test: a private instance on a free loopback
// port, config and log in its own directory.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, isAlive, portOrStop, spawnServer, stopSpawned, type Server } from './server-process.js';

export const MOSQUITTO = '/usr/sbin/mosquitto';

export function mosquittoVersion(): string {
  try {
    return /version (\S+)/.exec(execFileSync(MOSQUITTO, ['-h'], { stdio: ['ignore', 'pipe', 'pipe'] }).toString())?.[1] ?? '?';
  } catch (e) {
    const out = String((e as { stdout?: Buffer }).stdout ?? '');
    return /version (\S+)/.exec(out)?.[1] ?? '?';
  }
}

/**
 * Debian's Mosquitto 2.0 with its defaults (max_inflight_messages 20,
 * max_queued_messages 1000, no persistence), anonymous, one plain listener.
 * `extra` lines are appended to the config.
 */
export async function startMosquitto(dir: string, extra: string[] = []): Promise<Server> {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  const logFile = join(dir, 'mosquitto.log');
  writeFileSync(conf, [
    '# Written by the Switchboard bench for one run.',
    'per_listener_settings false',
    'user root', // no privilege drop: everything lives in the bench's temp dir
    'persistence false',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    ...extra,
    '',
  ].join('\n'));
  const p = spawnServer(`${MOSQUITTO} -c ${conf}`, { cwd: dir, logFile });
  await portOrStop(port, p, 'mosquitto');
  return { name: 'mosquitto', pid: p.pid, ports: { mqtt: port }, logFile, alive: () => isAlive(p), stop: () => stopSpawned(p) };
}
