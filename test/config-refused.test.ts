// A bad config file as `switchboard start` and `switchboard check-config` read it
// (docs/configuration.md), run as real subprocesses: YAML or JSON, validated before
// anything starts. Unknown keys, wrong types and bad values exit non-zero naming the
// key (every problem, not only the first), and no port is ever opened for a bad config.
import t from "tap";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { kill, lines, spawnCli } from "./helpers/cli.js";
import { canConnect, freePort } from "./helpers/ports.js";
import { tempDir } from "./helpers/temp-dir.js";
import { sleep } from "./helpers/wait.js";

t.setTimeout(300_000);

interface BadCase {
  name: string;
  file: string;
  /** Given the data dir and two free ports the config would otherwise listen on. */
  text: (dataDir: string, xmppPort: number, httpPort: number) => string;
  /** What stderr must contain: the key (or the file, when there is no key to name). */
  names: RegExp[];
}

const base = (dataDir: string, xp: number, hp: number) =>
  `dataDir: ${JSON.stringify(dataDir)}\nmqtt: {host: 127.0.0.1, port: 0, tlsPort: null}\nhttp: {host: 127.0.0.1, port: ${hp}}\n`;
const xmppOk = (xp: number) => `xmpp: {host: 127.0.0.1, port: ${xp}}\n`;

const badCases: BadCase[] = [
  { name: "unknown top-level key", file: "c.yaml", text: (d, xp, hp) => base(d, xp, hp) + xmppOk(xp) + "colour: blue\n", names: [/colour/] },
  { name: "unknown nested key (xmpp.prot)", file: "c.yaml", text: (d, xp, hp) => base(d, xp, hp) + `xmpp: {host: 127.0.0.1, port: ${xp}, prot: 5222}\n`, names: [/xmpp\.prot/] },
  {
    name: "unknown key two levels down (tsdb.influx.databse)",
    file: "c.yaml",
    text: (d, xp, hp) => base(d, xp, hp) + xmppOk(xp) + "tsdb:\n  influx:\n    databse: metrics\n",
    names: [/tsdb\.influx\.databse/],
  },
  { name: "typo in a top-level section (mqqt)", file: "c.yaml", text: (d, xp, hp) => base(d, xp, hp) + xmppOk(xp) + "mqqt: {port: 1884}\n", names: [/mqqt/] },
  { name: "wrong type (xmpp.port: \"x\")", file: "c.yaml", text: (d, _xp, hp) => base(d, 0, hp) + `xmpp: {host: 127.0.0.1, port: "x"}\n`, names: [/xmpp\.port/] },
  { name: "port out of range (http.port: 70000)", file: "c.yaml", text: (d, xp) => base(d, xp, 70000) + xmppOk(xp), names: [/http\.port/] },
  { name: "port out of range (xmpp.port: 70000)", file: "c.yaml", text: (d, _xp, hp) => base(d, 0, hp) + "xmpp: {host: 127.0.0.1, port: 70000}\n", names: [/xmpp\.port/] },
  { name: "negative port (mqtt.port: -1)", file: "c.yaml", text: (d, xp, hp) => `dataDir: ${JSON.stringify(d)}\nmqtt: {port: -1, tlsPort: null}\nhttp: {host: 127.0.0.1, port: ${hp}}\n` + xmppOk(xp), names: [/mqtt\.port/] },
  { name: "fractional port (xmpp.port: 5222.5)", file: "c.yaml", text: (d, _xp, hp) => base(d, 0, hp) + "xmpp: {port: 5222.5}\n", names: [/xmpp\.port/] },
  { name: "wrong type (xmpp.requireTls: \"yes\")", file: "c.yaml", text: (d, xp, hp) => base(d, xp, hp) + `xmpp: {host: 127.0.0.1, port: ${xp}, requireTls: "yes"}\n`, names: [/xmpp\.requireTls/] },
  { name: "bad enum (tsdb.kind: postgres)", file: "c.yaml", text: (d, xp, hp) => base(d, xp, hp) + xmppOk(xp) + "tsdb: {kind: postgres}\n", names: [/tsdb\.kind/] },
  { name: "section of the wrong type (xmpp: 5222)", file: "c.yaml", text: (d, _xp, hp) => base(d, 0, hp) + "xmpp: 5222\n", names: [/xmpp/] },
  { name: "non-positive number (commands.timeoutMs: 0)", file: "c.yaml", text: (d, xp, hp) => base(d, xp, hp) + xmppOk(xp) + "commands: {timeoutMs: 0}\n", names: [/commands\.timeoutMs/] },
  {
    name: "invalid YAML",
    file: "broken.yaml",
    text: (d, xp, hp) => `dataDir: ${JSON.stringify(d)}\nhttp: {host: 127.0.0.1, port: ${hp}\nxmpp:\n  port: ${xp}\n   host: [\n`,
    names: [/broken\.yaml/],
  },
  {
    name: "JSON with an unknown nested key",
    file: "c.json",
    text: (d, xp, hp) => JSON.stringify({ dataDir: d, xmpp: { host: "127.0.0.1", port: xp, prot: 5222 }, http: { host: "127.0.0.1", port: hp }, mqtt: { host: "127.0.0.1", port: 0, tlsPort: null } }),
    names: [/xmpp\.prot/],
  },
  {
    name: "JSON with a wrong type",
    file: "c.json",
    text: (d, _xp, hp) => JSON.stringify({ dataDir: d, xmpp: { host: "127.0.0.1", port: "x" }, http: { host: "127.0.0.1", port: hp }, mqtt: { host: "127.0.0.1", port: 0, tlsPort: null } }),
    names: [/xmpp\.port/],
  },
  {
    name: "truncated JSON",
    file: "truncated.json",
    text: (d, xp, hp) => JSON.stringify({ dataDir: d, xmpp: { host: "127.0.0.1", port: xp }, http: { host: "127.0.0.1", port: hp } }).slice(0, -3),
    names: [/truncated\.json/],
  },
  { name: "a list instead of a mapping", file: "list.yaml", text: () => "- xmpp\n- http\n", names: [/list\.yaml/] },
];

for (const c of badCases) {
  t.test(`start refuses a bad config: ${c.name}`, async (t) => {
    const dir = tempDir(t, "sb-config-");
    const dataDir = join(dir, "data");
    const xp = await freePort();
    const hp = await freePort();
    const file = join(dir, c.file);
    writeFileSync(file, c.text(dataDir, xp, hp));

    const p = spawnCli(["start", "--config", file]);
    t.teardown(() => kill(p));
    // While it runs, watch the ports the config names: none may ever accept a connection.
    let opened = false;
    let exited = false;
    const watch = (async () => {
      while (!exited) {
        if ((await canConnect(xp, 200)) || (await canConnect(hp, 200))) opened = true;
        await sleep(10);
      }
    })();
    const r = await Promise.race([p.exited, sleep(5000).then(() => null)]);
    exited = true;
    await watch;
    if (!r) {
      t.fail(`still running after 5 s (stdout: ${p.stdout.slice(0, 500)})`);
      return;
    }
    t.not(r.code, 0, `exits non-zero (code ${r.code})`);
    t.not(r.code, null, "exits by itself, not by a signal");
    t.notMatch(r.stdout, /"msg":"listening"/, "never logged listening");
    t.notOk(opened, "no port was opened");
    t.notOk(existsSync(join(dataDir, "registry.sqlite")), "no registry was created");
    const err = lines(r.stderr);
    t.ok(err.length >= 1, "says why on stderr");
    for (const n of c.names) t.match(r.stderr, n, `stderr names ${n}`);
    t.notMatch(r.stderr, /\n\s+at /, "no stack trace");

    // check-config says the same, exit 1.
    const check = await spawnCli(["check-config", "--config", file]).exited;
    t.equal(check.code, 1, "check-config exits 1");
    t.notMatch(check.stdout, /"ok"\s*:\s*true/, "check-config does not say ok");
    for (const n of c.names) t.match(check.stderr, n, `check-config names ${n}`);
  });
}

t.test("start with a config file that does not exist", async (t) => {
  const dir = tempDir(t, "sb-config-");
  const missing = join(dir, "no-such-config.yaml");
  const p = spawnCli(["start", "--config", missing]);
  t.teardown(() => kill(p));
  const r = await Promise.race([p.exited, sleep(5000).then(() => null)]);
  if (!r) {
    t.fail("still running after 5 s");
    return;
  }
  t.not(r.code, 0, "exits non-zero");
  t.not(r.code, null, "exits by itself");
  t.notMatch(r.stdout, /listening/, "never listened");
  t.match(r.stderr, /no-such-config\.yaml/, "names the file");
  t.equal(lines(r.stderr).length, 1, "one line");
  const check = await spawnCli(["check-config", "--config", missing]).exited;
  t.equal(check.code, 1, "check-config exits 1");
  t.match(check.stderr, /no-such-config\.yaml/);
});

t.test("every problem in a config is reported, each naming its key", async (t) => {
  const dir = tempDir(t, "sb-config-");
  const file = join(dir, "many.yaml");
  writeFileSync(file, `dataDir: ${JSON.stringify(join(dir, "data"))}\nxmpp: {prot: 1, port: "x"}\nhttp: {port: 70000}\nfoo: 1\n`);
  const r = await spawnCli(["check-config", "--config", file]).exited;
  t.equal(r.code, 1);
  for (const key of [/xmpp\.prot/, /xmpp\.port/, /http\.port/, /foo/]) t.match(r.stderr, key, `names ${key}`);
});
