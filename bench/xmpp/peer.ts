// A server under test in the XMPP bench: how it is prepared (config, accounts),
// started as a private instance on a free loopback port in its own directory, and
// stopped. The packaged system services are never used or touched. One module per
// server: prosody.ts, ejabberd.ts, switchboard.ts.
import { execFileSync } from 'node:child_process';
import { portOrStop, stopSpawned, type Spawned } from '../common/server-process.js';

export interface Running {
  port: number;
  /** Root of the process tree to measure (bench/common/proc.ts). */
  pid: number;
  stop(): Promise<void>;
}

export interface Peer {
  readonly name: string;
  /** Writes the config and every account that can be written offline. */
  prepare(users: string[], password: string): Promise<void>;
  start(): Promise<Running>;
  /** Provisioning that needs the server up; called once, after the first start. */
  provisionOnline?(r: Running, register: (port: number) => Promise<void>): Promise<void>;
  /** Where its logs go, for error messages. */
  readonly logFile: string;
}

/** Waits for the c2s port; a server that never gets ready is stopped, not leaked. */
export async function ready(port: number, p: Spawned, what: string): Promise<Running> {
  await portOrStop(port, p, what, { timeoutMs: 60_000, pollMs: 200, graceMs: 15_000 });
  return { port, pid: p.pid, stop: () => stopSpawned(p, 15_000) };
}

export function chown(path: string, user: string): void {
  execFileSync('chown', ['-R', `${user}:${user}`, path]);
}
