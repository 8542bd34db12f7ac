// Switchboard from this repository as a server under test in the XMPP bench,
// through its documented CLI: accounts by `device import --accounts`, then
// `bin/switchboard.js start` on the same data dir at every start.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { brokerNodeFlags } from '../common/broker-flags.js';
import { listeningLine, onListening, spawnServer } from '../common/server-process.js';
import { SWITCHBOARD_BIN, provisionSwitchboard } from '../common/switchboard.js';
import { ready, type Peer, type Running } from './peer.js';

export class Switchboard implements Peer {
  readonly logFile: string;
  private readonly config: string;
  /** The bin that runs: this checkout's, or `checkout`'s (an A/B in one run). */
  private readonly bin: string;

  constructor(private readonly dir: string, readonly name = 'switchboard', checkout?: string) {
    this.logFile = join(dir, 'switchboard.log');
    this.config = join(dir, 'switchboard.yaml');
    this.bin = checkout ? join(checkout, 'bin', 'switchboard.js') : SWITCHBOARD_BIN;
  }

  /** The bench users as operator accounts, through the CLI. */
  async prepare(users: string[], password: string): Promise<void> {
    if (!existsSync(SWITCHBOARD_BIN)) throw new Error(`${SWITCHBOARD_BIN} does not exist (yet)`);
    provisionSwitchboard(this.dir, { devices: [], accounts: users.map((name) => ({ name, role: 'operator', password })) });
  }

  async start(): Promise<Running> {
    const l = onListening();
    const p = spawnServer(`${process.execPath} ${brokerNodeFlags(this.bin).join(' ')} ${this.bin} start --config ${this.config}`,
      { cwd: this.dir, logFile: this.logFile, onLine: l.onLine });
    const rec = await listeningLine(p, l.line, this.name);
    return ready(rec.xmpp as number, p, this.name);
  }
}
