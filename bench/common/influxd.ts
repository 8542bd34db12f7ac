// Debian's InfluxDB 1.x as the store under test: a private influxd on free
// loopback ports, config, data and log in its own directory.
import { influxConfig } from '../../test/helpers/influx.js';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, isAlive, spawnServer, stopSpawned, type Server } from './server-process.js';
import { sleep } from './timing.js';

export const INFLUXD = '/usr/bin/influxd';

export interface Influx extends Server {
  readonly url: string;
  query(q: string, db?: string): Promise<any>;
  /** Points the shards of `db` have accepted so far (SHOW STATS, cheap enough to poll). */
  pointsWritten(db: string): Promise<number>;
  /** SELECT count(*): distinct points stored (a point written twice counts once). */
  count(db: string, measurement: string): Promise<number>;
}

export function influxVersion(): string {
  try {
    return /InfluxDB (\S+)/.exec(execFileSync(INFLUXD, ['version']).toString())?.[1] ?? '?';
  } catch {
    return '?';
  }
}

/** Debian's influxd with the tests' config (test/helpers/influx.ts: no reporting, no _internal store, no query log). */
export async function startInflux(dir: string): Promise<Influx> {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const rpc = await freePort();
  const conf = join(dir, 'influxdb.conf');
  writeFileSync(conf, influxConfig(dir, port, rpc));
  const logFile = join(dir, 'influxd.log');
  const p = spawnServer(`${INFLUXD} -config ${conf}`, { cwd: dir, logFile });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      if ((await fetch(`${url}/ping`)).status === 204) break;
    } catch { /* not yet */ }
    if (p.child.exitCode !== null || Date.now() > deadline) {
      await stopSpawned(p);
      throw new Error(`influxd did not start (log: ${logFile})`);
    }
    await sleep(100);
  }
  const query = async (q: string, db?: string): Promise<any> => {
    const params = new URLSearchParams({ q, epoch: 'ms' });
    if (db) params.set('db', db);
    const res = await fetch(`${url}/query`, { method: 'POST', body: params });
    return res.json();
  };
  return {
    name: 'influxd', pid: p.pid, ports: { influx: port }, logFile, url, query, alive: () => isAlive(p),
    async pointsWritten(db) {
      const r = await query('SHOW STATS FOR \'shard\'');
      let n = 0;
      for (const s of r.results?.[0]?.series ?? []) {
        if (s.tags?.database !== db) continue;
        const i = (s.columns as string[]).indexOf('writePointsOk');
        n += Number(s.values?.[0]?.[i] ?? 0);
      }
      return n;
    },
    async count(db, measurement) {
      const r = await query(`SELECT count(*) FROM "${measurement}"`, db);
      const values = r.results?.[0]?.series?.[0]?.values?.[0] as number[] | undefined;
      return values ? Math.max(...values.slice(1)) : 0;
    },
    stop: () => stopSpawned(p),
  };
}
