// Prosody as a server under test in the XMPP bench.
import { createHash, createHmac, pbkdf2Sync, randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, spawnServer } from '../common/server-process.js';
import { chown, ready, type Peer, type Running } from './peer.js';

/**
 * Debian's Prosody 0.12 with the Debian default module set, minus what would
 * listen on other ports or throttle the test: tls (no certificate: the bench
 * is plaintext), limits (the c2s rate limit would be the thing measured),
 * dialback/s2s, admin_shell, posix (we run it in the foreground ourselves).
 */
export class Prosody implements Peer {
  readonly name = 'prosody';
  readonly logFile: string;
  private readonly config: string;
  private port = 0;

  constructor(private readonly dir: string) {
    this.logFile = join(dir, 'prosody.log');
    this.config = join(dir, 'prosody.cfg.lua');
  }

  async prepare(users: string[], password: string): Promise<void> {
    mkdirSync(join(this.dir, 'data'), { recursive: true });
    this.writeAccounts(users, password);
    chown(this.dir, 'prosody');
  }

  /**
   * Writes internal_hashed account files directly: `prosodyctl register`
   * costs a process start per user. The format is what Prosody itself
   * stores: SCRAM-SHA-1 StoredKey/ServerKey in hex, with Prosody's default
   * 10,000 iterations, so PLAIN logins cost what they cost on a real
   * install. One salt serves all bench users: it changes nothing for the
   * server and saves 10,000 PBKDF2 runs here.
   */
  private writeAccounts(users: string[], password: string): void {
    const salt = randomUUID();
    const iterations = 10_000;
    const salted = pbkdf2Sync(password, salt, iterations, 20, 'sha1');
    const storedKey = createHash('sha1').update(createHmac('sha1', salted).update('Client Key').digest()).digest('hex');
    const serverKey = createHmac('sha1', salted).update('Server Key').digest('hex');
    const body = `return {\n\t["iteration_count"] = ${iterations};\n\t["salt"] = "${salt}";\n` +
      `\t["server_key"] = "${serverKey}";\n\t["stored_key"] = "${storedKey}";\n};\n`;
    // Host and user names here are plain [a-z0-9], which Prosody's file
    // name escaping leaves unchanged.
    const dir = join(this.dir, 'data', 'localhost', 'accounts');
    mkdirSync(dir, { recursive: true });
    for (const u of users) writeFileSync(join(dir, `${u}.dat`), body);
  }

  private writeConfig(): void {
    const modules = ['disco', 'roster', 'saslauth', 'blocklist', 'bookmarks', 'carbons', 'pep', 'private',
      'smacks', 'vcard4', 'vcard_legacy', 'csi_simple', 'invites', 'invites_adhoc', 'invites_register',
      'ping', 'register', 'time', 'uptime', 'version', 'admin_adhoc'];
    writeFileSync(this.config, `-- Written by bench/xmpp for one bench run.
pidfile = "${this.dir}/prosody.pid"
data_path = "${this.dir}/data"
plugin_paths = { }
log = { info = "${this.logFile}" }
c2s_ports = { ${this.port} }
c2s_interfaces = { "127.0.0.1" }
c2s_direct_tls_ports = { }
legacy_ssl_ports = { }
s2s_ports = { }
http_ports = { }
https_ports = { }
modules_enabled = { ${modules.map((m) => `"${m}"`).join('; ')} }
modules_disabled = { "s2s" }
authentication = "internal_hashed"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
allow_registration = false
VirtualHost "localhost"
`);
    chown(this.config, 'prosody');
  }

  async start(): Promise<Running> {
    this.port = await freePort();
    this.writeConfig();
    // Prosody refuses to run as root; setpriv execs in place (unlike
    // runuser/su, which fork), so the pid we hold is Prosody's own.
    const p = spawnServer(
      `setpriv --reuid=prosody --regid=prosody --init-groups prosody -F --config ${this.config}`,
      { cwd: this.dir, logFile: join(this.dir, 'prosody.out') });
    return ready(this.port, p, 'prosody');
  }
}
