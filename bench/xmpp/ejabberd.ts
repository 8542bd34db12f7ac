// ejabberd as a server under test in the XMPP bench.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, spawnServer } from '../common/server-process.js';
import { chown, ready, type Peer, type Running } from './peer.js';

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
    const p = spawnServer(
      `setpriv --reuid=ejabberd --regid=ejabberd --init-groups env HOME=${d} /usr/sbin/ejabberdctl ` +
      `--config-dir ${d} --config ${d}/ejabberd.yml --ctl-config ${d}/ejabberdctl.cfg ` +
      `--logs ${d}/logs --spool ${d}/spool foreground`,
      { cwd: d, logFile: join(d, 'ejabberd.out') });
    return ready(this.port, p, 'ejabberd');
  }

  /** Mnesia cannot be written from outside: accounts go in via XEP-0077. */
  async provisionOnline(r: Running, register: (port: number) => Promise<void>): Promise<void> {
    await register(r.port);
  }
}
