// The three servers under test: how to configure, provision, start and stop
// each one as a private instance on free loopback ports, in its own
// directory. The packaged system services are never used or touched.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import { createHash, createHmac, pbkdf2Sync, randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import { sleep } from './proc.js';
import { brokerNodeFlags } from '../common/broker-flags.js';

export interface Running {
  port: number;
  /** Root of the process tree to measure (see proc.ts). */
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

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

// Every server we started, by process group id, so that a crash or Ctrl-C
// of the bench still takes them down (see killAllServers).
const live = new Set<number>();

export function killAllServers(): void {
  for (const pgid of live) {
    try { process.kill(-pgid, 'SIGKILL'); } catch { /* already gone */ }
  }
  live.clear();
}

/**
 * Shell prefix raising the open files limit: to 65536 where allowed, else
 * (e.g. in a container without CAP_SYS_RESOURCE) to the hard limit.
 */
export const RAISE_NOFILE = 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"';

/**
 * Spawns `command` in its own process group with a raised file limit (10,000
 * connections need more than the usual 1,024 descriptors). Output goes to
 * logFile; onLine, if given, sees each stdout line first.
 */
function spawnServer(command: string, opts: { cwd: string; logFile: string; env?: NodeJS.ProcessEnv; onLine?: (l: string) => void }) {
  const child = spawn('bash', ['-c', `${RAISE_NOFILE}; exec ${command}`], {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    detached: true, // own process group: one kill reaches wrappers and children
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid!;
  live.add(pid);
  const log = createWriteStream(opts.logFile, { flags: 'a' });
  if (opts.onLine) {
    const onLine = opts.onLine;
    createInterface({ input: child.stdout! }).on('line', (l) => { log.write(l + '\n'); onLine(l); });
  } else {
    child.stdout!.pipe(log);
  }
  child.stderr!.pipe(log);
  const exited = new Promise<void>((resolve) => child.once('exit', () => { live.delete(pid); resolve(); }));
  return { child, pid, exited };
}

async function stopServer(child: ChildProcess, pid: number, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try { process.kill(-pid, 'SIGTERM'); } catch { /* gone */ }
  const timedOut = await Promise.race([exited.then(() => false), sleep(15_000).then(() => true)]);
  if (timedOut) {
    try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ }
    await exited;
  }
}

/** Polls until something accepts on the port, failing early if the server died. */
async function waitForPort(port: number, child: ChildProcess, what: string, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${what} exited during startup`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`${what} did not open port ${port} within ${timeoutMs / 1000}s`);
    await sleep(200);
  }
}

/** Waits for the port; a server that never gets ready is stopped, not leaked. */
async function ready(port: number, p: ReturnType<typeof spawnServer>, what: string): Promise<Running> {
  const stop = () => stopServer(p.child, p.pid, p.exited);
  try {
    await waitForPort(port, p.child, what);
  } catch (e) {
    await stop();
    throw e;
  }
  return { port, pid: p.pid, stop };
}

function chown(path: string, user: string): void {
  execFileSync('chown', ['-R', `${user}:${user}`, path]);
}

// ---------------------------------------------------------------- Prosody

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
    const { child, pid, exited } = spawnServer(
      `setpriv --reuid=prosody --regid=prosody --init-groups prosody -F --config ${this.config}`,
      { cwd: this.dir, logFile: join(this.dir, 'prosody.out') });
    return ready(this.port, { child, pid, exited }, 'prosody');
  }
}

// --------------------------------------------------------------- ejabberd

/**
 * Debian's ejabberd 23.01 with the Debian default module set, minus push and
 * the modules that serve other listeners (BOSH, HTTP API, MQTT, STUN); plus
 * mod_register, which we use to provision accounts. Passwords are stored as
 * SCRAM (Debian's `auth_password_format: scram`) in Mnesia, as shipped.
 */
export class Ejabberd implements Peer {
  readonly name = 'ejabberd';
  readonly logFile: string;
  private port = 0;

  constructor(private readonly dir: string) {
    this.logFile = join(dir, 'logs', 'ejabberd.log');
  }

  async prepare(): Promise<void> {
    mkdirSync(join(this.dir, 'spool'), { recursive: true });
    mkdirSync(join(this.dir, 'logs'), { recursive: true });
    writeFileSync(join(this.dir, 'inetrc'), '{lookup,["file","native"]}.\n{host,{127,0,0,1}, ["localhost"]}.\n');
    chown(this.dir, 'ejabberd');
  }

  private async writeConfig(): Promise<void> {
    // Erlang distribution on a fixed free port, without epmd: lets this node
    // run next to any other (e.g. the packaged one) and leaves no epmd behind.
    writeFileSync(join(this.dir, 'ejabberdctl.cfg'),
      `ERL_DIST_PORT=${await freePort()}\nINET_DIST_INTERFACE=127.0.0.1\n` +
      `ERLANG_NODE=sbbench${process.pid}@localhost\nERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0"\n`);
    writeFileSync(join(this.dir, 'ejabberd.yml'), `# Written by bench/xmpp for one bench run.
loglevel: info
log_rotate_count: 0
hosts: [localhost]
listen:
  - port: ${this.port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    backlog: 128
    max_stanza_size: 1048576
    shaper: c2s_shaper
    access: c2s
    starttls: false
auth_password_format: scram
registration_timeout: infinity
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
  register:
    allow: all
  pubsub_createnode:
    allow: local
  muc_create:
    allow: local
shaper_rules:
  max_user_sessions: 10
  max_user_offline_messages: 100
  c2s_shaper: none
modules:
  mod_adhoc: {}
  mod_admin_extra: {}
  mod_avatar: {}
  mod_blocking: {}
  mod_caps: {}
  mod_carboncopy: {}
  mod_client_state: {}
  mod_configure: {}
  mod_disco: {}
  mod_fail2ban: {}
  mod_last: {}
  mod_muc:
    access_create: muc_create
  mod_offline:
    access_max_user_messages: max_user_offline_messages
  mod_ping: {}
  mod_pres_counter: {count: 5, interval: 60}
  mod_privacy: {}
  mod_private: {}
  mod_pubsub:
    access_createnode: pubsub_createnode
    plugins: [flat, pep]
  mod_register:
    access: register
    ip_access: all
  mod_roster: {versioning: true}
  mod_shared_roster: {}
  mod_sic: {}
  mod_stream_mgmt: {resend_on_timeout: if_offline}
  mod_vcard: {search: false}
  mod_vcard_xupdate: {}
  mod_version: {}
`);
    chown(this.dir, 'ejabberd');
  }

  async start(): Promise<Running> {
    this.port = await freePort();
    await this.writeConfig();
    const d = this.dir;
    // As the ejabberd user, so ejabberdctl does not `su` (one less fork) and
    // the spool stays owned by it. HOME keeps the Erlang cookie in our dir.
    const { child, pid, exited } = spawnServer(
      `setpriv --reuid=ejabberd --regid=ejabberd --init-groups env HOME=${d} /usr/sbin/ejabberdctl ` +
      `--config-dir ${d} --config ${d}/ejabberd.yml --ctl-config ${d}/ejabberdctl.cfg ` +
      `--logs ${d}/logs --spool ${d}/spool foreground`,
      { cwd: d, logFile: join(d, 'ejabberd.out') });
    return ready(this.port, { child, pid, exited }, 'ejabberd');
  }

  /** Mnesia cannot be written from outside: accounts go in via XEP-0077. */
  async provisionOnline(r: Running, register: (port: number) => Promise<void>): Promise<void> {
    await register(r.port);
  }
}

// ------------------------------------------------------------ Switchboard

/** Switchboard from this repository, through its documented CLI. */
export class Switchboard implements Peer {
  readonly name = 'switchboard';
  readonly logFile: string;
  private readonly config: string;
  static readonly bin = new URL('../../bin/switchboard.js', import.meta.url).pathname;

  constructor(private readonly dir: string) {
    this.logFile = join(dir, 'switchboard.log');
    this.config = join(dir, 'switchboard.yaml');
  }

  async prepare(users: string[], password: string): Promise<void> {
    if (!existsSync(Switchboard.bin)) throw new Error(`${Switchboard.bin} does not exist (yet)`);
    mkdirSync(join(this.dir, 'data'), { recursive: true });
    writeFileSync(this.config, [
      'domain: localhost',
      `dataDir: ${join(this.dir, 'data')}`,
      'xmpp: { host: 127.0.0.1, port: 0, requireTls: false }',
      'mqtt: { host: 127.0.0.1, port: 0, tlsPort: null }',
      'http: { host: 127.0.0.1, port: 0 }',
      '',
    ].join('\n'));
    const csv = join(this.dir, 'accounts.csv');
    writeFileSync(csv, users.map((u) => `${u},operator,${password}\n`).join(''));
    try {
      execFileSync(process.execPath, [Switchboard.bin, 'device', 'import', csv, '--accounts', '--config', this.config],
        { stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 });
    } catch (e) {
      const err = e as { stderr?: Buffer; stdout?: Buffer; message: string };
      throw new Error(`device import failed: ${(err.stderr?.toString() || err.stdout?.toString() || err.message).trim().slice(0, 500)}`);
    }
  }

  async start(): Promise<Running> {
    let announced: (port: number) => void = () => {};
    const portP = new Promise<number>((resolve) => { announced = resolve; });
    const { child, pid, exited } = spawnServer(
      `${process.execPath} ${brokerNodeFlags(Switchboard.bin).join(' ')} ${Switchboard.bin} start --config ${this.config}`,
      {
        cwd: this.dir, logFile: this.logFile,
        onLine: (line) => {
          if (!line.includes('"listening"')) return;
          try {
            const rec = JSON.parse(line) as { msg?: string; xmpp?: number };
            if (rec.msg === 'listening' && typeof rec.xmpp === 'number') announced(rec.xmpp);
          } catch { /* not JSON */ }
        },
      });
    let port: number;
    try {
      port = await Promise.race([
        portP,
        exited.then((): number => { throw new Error('switchboard exited during startup'); }),
        sleep(60_000).then((): number => { throw new Error('switchboard logged no "listening" line within 60s'); }),
      ]);
    } catch (e) {
      await stopServer(child, pid, exited);
      throw e;
    }
    return ready(port, { child, pid, exited }, 'switchboard');
  }
}
