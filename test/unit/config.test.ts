// parseConfig / loadConfig in process (docs/configuration.md): the documented defaults,
// strictness (unknown keys at any depth), types and ranges, YAML and JSON files,
// and errors that name the key.
import t from "tap";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, loadConfig, parseConfig } from "../../src/config.js";

type TT = Parameters<Parameters<typeof t.test>[0]>[0];

function tempDir(t: TT): string {
  const dir = mkdtempSync(join(tmpdir(), "sb-config-unit-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The ConfigError thrown by fn; fails the test when fn does not throw one. */
function configError(t: TT, fn: () => unknown, what: string): string {
  try {
    fn();
  } catch (err) {
    t.type(err, ConfigError, `${what}: throws a ConfigError`);
    return (err as Error).message;
  }
  t.fail(`${what}: accepted`);
  return "";
}

t.test("defaults are the documented ones", async (t) => {
  for (const input of [undefined, null, {}]) {
    const c = parseConfig(input);
    t.match(c, {
      domain: "localhost",
      dataDir: "./data",
      xmpp: { host: "0.0.0.0", port: 5222, requireTls: true, maxStanzaBytes: 65536 },
      mqtt: { host: "0.0.0.0", port: 1883, tlsPort: 8883, maxPacketBytes: 65536 },
      http: { host: "0.0.0.0", port: 5280 },
      tsdb: { kind: "embedded", influx: { url: "http://127.0.0.1:8086", database: "switchboard", timeoutMs: 10000 }, batchSize: 5000, flushMs: 1000, spoolMaxBytes: 1073741824, shutdownFlushMs: 5000 },
      commands: { timeoutMs: 10000 },
    });
    t.equal(c.xmpp.tls, undefined, "no TLS files: a certificate is generated");
    t.ok(c.auth.scramIterations >= 4096, "SCRAM iterations at least 4096 (RFC 7677)");
  }
  t.same(loadConfig(), parseConfig({}), "loadConfig() without a file gives the defaults");
});

t.test("every documented key is accepted and kept", async (t) => {
  const c = parseConfig({
    domain: "iot.example.org",
    dataDir: "/var/lib/switchboard",
    xmpp: { host: "127.0.0.1", port: 15222, requireTls: false, tls: { cert: "/etc/sb/cert.pem", key: "/etc/sb/key.pem" }, maxStanzaBytes: 131072 },
    mqtt: { host: "::1", port: 11883, tlsPort: 18883, maxPacketBytes: 4096 },
    http: { host: "127.0.0.1", port: 15280 },
    tsdb: { kind: "influx", influx: { url: "http://influx.internal:8086", database: "fleet", timeoutMs: 3000 }, batchSize: 100, flushMs: 250 },
    commands: { timeoutMs: 2500 },
  });
  t.equal(c.domain, "iot.example.org");
  t.equal(c.dataDir, "/var/lib/switchboard");
  t.same(c.xmpp.tls, { cert: "/etc/sb/cert.pem", key: "/etc/sb/key.pem" });
  t.equal(c.xmpp.port, 15222);
  t.equal(c.xmpp.requireTls, false);
  t.equal(c.xmpp.maxStanzaBytes, 131072);
  t.same([c.mqtt.host, c.mqtt.port, c.mqtt.tlsPort, c.mqtt.maxPacketBytes], ["::1", 11883, 18883, 4096]);
  t.same([c.http.host, c.http.port], ["127.0.0.1", 15280]);
  t.same(c.tsdb, { kind: "influx", influx: { url: "http://influx.internal:8086", database: "fleet", timeoutMs: 3000 }, batchSize: 100, flushMs: 250, spoolMaxBytes: 1073741824, shutdownFlushMs: 5000 });
  t.equal(c.commands.timeoutMs, 2500);
});

t.test("partial sections keep the other defaults", async (t) => {
  const c = parseConfig({ xmpp: { port: 0 }, mqtt: { tlsPort: null }, tsdb: { influx: { database: "x" } } });
  t.equal(c.xmpp.port, 0, "port 0 is allowed (pick a free port)");
  t.equal(c.xmpp.host, "0.0.0.0");
  t.equal(c.xmpp.requireTls, true);
  t.equal(c.mqtt.tlsPort, null, "mqtt.tlsPort: null turns MQTT over TLS off");
  t.equal(c.mqtt.port, 1883);
  t.equal(c.tsdb.influx.database, "x");
  t.equal(c.tsdb.influx.url, "http://127.0.0.1:8086");
  t.equal(c.tsdb.kind, "embedded");
  t.equal(parseConfig({ http: { port: 65535 } }).http.port, 65535, "65535 is a port");
});

t.test("unknown keys are errors at every depth, and the error names the key", async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [{ colour: "blue" }, /colour/],
    [{ xmpp: { prot: 5222 } }, /xmpp\.prot/],
    [{ mqtt: { tlsport: 8883 } }, /mqtt\.tlsport/],
    [{ http: { port: 80, tls: true } }, /http\.tls/],
    [{ tsdb: { influx: { databse: "x" } } }, /tsdb\.influx\.databse/],
    [{ xmpp: { tls: { cert: "a", key: "b", ca: "c" } } }, /xmpp\.tls\.ca/],
    [{ commands: { timeout: 5 } }, /commands\.timeout/],
    [{ Domain: "localhost" }, /Domain/],
  ];
  for (const [input, key] of cases) {
    const msg = configError(t, () => parseConfig(input), JSON.stringify(input));
    t.match(msg, key, `names ${key}`);
  }
});

t.test("wrong types and out-of-range values name the key", async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [{ xmpp: { port: "x" } }, /xmpp\.port/],
    [{ xmpp: { port: "5222" } }, /xmpp\.port/],
    [{ xmpp: { port: 70000 } }, /xmpp\.port/],
    [{ http: { port: 65536 } }, /http\.port/],
    [{ mqtt: { port: -1 } }, /mqtt\.port/],
    [{ mqtt: { tlsPort: 1.5 } }, /mqtt\.tlsPort/],
    [{ mqtt: { maxPacketBytes: 0 } }, /mqtt\.maxPacketBytes/],
    [{ xmpp: { requireTls: "false" } }, /xmpp\.requireTls/],
    [{ xmpp: { maxStanzaBytes: -5 } }, /xmpp\.maxStanzaBytes/],
    [{ xmpp: { tls: { cert: "/c.pem" } } }, /xmpp\.tls\.key/],
    [{ xmpp: 5222 }, /xmpp/],
    [{ tsdb: { kind: "postgres" } }, /tsdb\.kind/],
    [{ tsdb: { batchSize: 0 } }, /tsdb\.batchSize/],
    [{ tsdb: { flushMs: "1s" } }, /tsdb\.flushMs/],
    [{ tsdb: { influx: { url: "not a url" } } }, /tsdb\.influx\.url/],
    [{ commands: { timeoutMs: -1 } }, /commands\.timeoutMs/],
    [{ dataDir: "" }, /dataDir/],
    [{ dataDir: 42 }, /dataDir/],
    [{ domain: "" }, /domain/],
    [{ domain: "bad domain" }, /domain/],
    [{ auth: { hashThreads: 0 } }, /auth\.hashThreads/],
    [{ auth: { hashThreads: 2.5 } }, /auth\.hashThreads/],
    [{ auth: { hashNice: 20 } }, /auth\.hashNice/],
    [{ auth: { hashNice: -1 } }, /auth\.hashNice/],
    [{ auth: { hashNice: "low" } }, /auth\.hashNice/],
  ];
  for (const [input, key] of cases) {
    const msg = configError(t, () => parseConfig(input), JSON.stringify(input));
    t.match(msg, key, `names ${key}`);
  }
});

t.test("several problems: each one is reported", async (t) => {
  const msg = configError(t, () => parseConfig({ xmpp: { prot: 1, port: "x" }, http: { port: 70000 }, foo: 1 }), "several");
  for (const key of [/xmpp\.prot/, /xmpp\.port/, /http\.port/, /foo/]) t.match(msg, key, `names ${key}`);
});

t.test("the error message names the source file", async (t) => {
  const msg = configError(t, () => parseConfig({ xmpp: { prot: 1 } }, "/etc/switchboard.yaml"), "source");
  t.match(msg, "/etc/switchboard.yaml");
  t.match(msg, /xmpp\.prot/);
});

t.test("loadConfig reads YAML and JSON to the same config", async (t) => {
  const dir = tempDir(t);
  const yamlFile = join(dir, "c.yaml");
  writeFileSync(
    yamlFile,
    ["# a comment", "domain: iot.example.org", "dataDir: /srv/sb", "xmpp:", "  port: 0", "  requireTls: false", "mqtt:", "  tlsPort: null", "tsdb:", "  kind: influx", "  influx:", "    database: fleet", ""].join("\n"),
  );
  const jsonFile = join(dir, "c.json");
  writeFileSync(jsonFile, JSON.stringify({ domain: "iot.example.org", dataDir: "/srv/sb", xmpp: { port: 0, requireTls: false }, mqtt: { tlsPort: null }, tsdb: { kind: "influx", influx: { database: "fleet" } } }, null, 2));
  const fromYaml = loadConfig(yamlFile);
  const fromJson = loadConfig(jsonFile);
  t.same(fromYaml, fromJson, "same result");
  t.equal(fromYaml.domain, "iot.example.org");
  t.equal(fromYaml.xmpp.port, 0);
  t.equal(fromYaml.mqtt.tlsPort, null);
  t.equal(fromYaml.tsdb.influx.database, "fleet");
  t.equal(fromYaml.http.port, 5280, "defaults fill the rest");

  const empty = join(dir, "empty.yaml");
  writeFileSync(empty, "");
  t.same(loadConfig(empty), parseConfig({}), "an empty file gives the defaults");
  const commentsOnly = join(dir, "comments.yaml");
  writeFileSync(commentsOnly, "# nothing here\n");
  t.same(loadConfig(commentsOnly), parseConfig({}), "a file of comments gives the defaults");
});

t.test("loadConfig errors: unknown keys, bad files", async (t) => {
  const dir = tempDir(t);
  const write = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const cases: Array<[string, RegExp[]]> = [
    [write("typo.yaml", "xmpp:\n  prot: 5222\n"), [/xmpp\.prot/, /typo\.yaml/]],
    [write("typo.json", '{"xmpp": {"prot": 5222}}'), [/xmpp\.prot/, /typo\.json/]],
    [write("port.yaml", 'xmpp:\n  port: "x"\n'), [/xmpp\.port/]],
    [write("range.json", '{"http": {"port": 70000}}'), [/http\.port/]],
    [write("invalid.yaml", "xmpp: [\n  port: 1\n"), [/invalid\.yaml/]],
    [write("invalid.json", '{"xmpp": {"port": 1}'), [/invalid\.json/]],
    [write("dup.yaml", "xmpp:\n  port: 1\nxmpp:\n  port: 2\n"), [/dup\.yaml/]],
    [write("list.yaml", "- a\n- b\n"), [/list\.yaml/]],
    [write("scalar.yaml", "just a string\n"), [/scalar\.yaml/]],
    [join(dir, "missing.yaml"), [/missing\.yaml/]],
  ];
  for (const [file, patterns] of cases) {
    const msg = configError(t, () => loadConfig(file), file.slice(dir.length + 1));
    for (const p of patterns) t.match(msg, p, `${file.slice(dir.length + 1)}: names ${p}`);
  }
});
