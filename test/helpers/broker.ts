// Starts a real broker in this process on 127.0.0.1, port 0, in a temp data dir,
// with accounts provisioned through the same code the CLI uses.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { parseConfig, type Config } from "../../src/config.js";
import { createLogger } from "../../src/log.js";
import { startBroker, type Broker } from "../../src/index.js";
import { addAccount } from "../../src/provision.js";
import type { Role } from "../../src/registry/registry.js";
import type { DeviceType } from "../../devices/index.js";

export interface TestAccount {
  name: string;
  role: Role;
  type?: string;
  password: string;
}

export interface TestBroker extends Broker {
  config: Config;
  dataDir: string;
  /** Everything the broker logged, one JSON line each. */
  logs: string[];
  add(account: TestAccount): Promise<void>;
  close(): Promise<void>;
}

export async function startTestBroker(overrides: Record<string, unknown> = {}, accounts: TestAccount[] = [], options: { deviceTypes?: readonly DeviceType[]; dataDir?: string } = {}): Promise<TestBroker> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "sb-test-"));
  const { xmpp, http, mqtt, ...rest } = overrides as Record<string, Record<string, unknown> | undefined>;
  const config = parseConfig({
    dataDir,
    xmpp: { host: "127.0.0.1", port: 0, ...xmpp },
    mqtt: { host: "127.0.0.1", port: 0, tlsPort: 0, ...mqtt },
    http: { host: "127.0.0.1", port: 0, ...http },
    ...rest,
  });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      logs.push(...String(chunk).split("\n").filter(Boolean));
      done();
    },
  });
  const broker = await startBroker(config, { log: createLogger(sink), deviceTypes: options.deviceTypes });
  const add = async (a: TestAccount) => {
    await addAccount(broker.registry, { name: a.name, role: a.role, type: a.type ?? null, password: a.password }, config.auth.scramIterations, options.deviceTypes?.map((t) => t.name));
  };
  for (const a of accounts) if (!broker.registry.get(a.name)) await add(a);
  return {
    ...broker,
    config,
    dataDir,
    logs,
    add,
    async close() {
      await broker.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
