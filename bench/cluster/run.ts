// Cluster benchmark (usage: --help, or options.ts): Switchboard as a node of a cluster,
// against standalone and across nodes, on a real Redis, PostgreSQL and InfluxDB that
// the bench starts on loopback (infra.ts). Every node is its own process (nodes.ts),
// so each one's CPU is read from /proc, as Redis', influxd's and PostgreSQL's are.
//
//   a. One node as a cluster of one (PostgreSQL registry, Redis for sessions, presence
//      and MQTT through aedes' Redis engines) against the same node standalone (SQLite,
//      in-memory aedes): XMPP routing, MQTT QoS 1, telemetry landed in InfluxDB, and
//      XEP-0050 commands (a reference).
//      Both nodes run side by side, idle in turn; the measurements alternate between
//      them (S C, C S, S C), since this VM's speed moves ±25 % within minutes.
//   b. Two nodes: XMPP stanzas from clients on A to clients on B (throughput, and
//      latency at 1,000/s against pairs on A alone), and XEP-0050 commands from a
//      service on B to MQTT devices on A (and, for reference, from a service on A).
//   c. Telemetry on 1, 2 and 3 nodes: CPU per sample of each node, Redis, influxd.
//   memory: RSS and live memory (heap + external after full collections, through
//      the inspector) per idle MQTT device on a fresh standalone node and on a fresh
//      cluster node, and on the other node of the cluster (its copy of the sessions).
// Redis commands and bytes per message from INFO (commandstats, total_net_*_bytes)
// read at the edges of each measured window. See docs/benchmarks.md ("Cluster").
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { runMain } from '../common/cli.js';
import { withWorkers } from '../common/ipc.js';
import { influxVersion, startInflux } from '../common/influxd.js';
import { gitDescribe } from '../common/build.js';
import { killAll } from '../common/server-process.js';
import { Budget, ensureOpenFiles, fmt, load1, log, machine, waitForeignQuiet } from '../common/util.js';
import { redisVersion, startPostgres, startRedis } from './infra.js';
import { provision, startNode, type NodeProc, type Shared } from './nodes.js';
import { P, accounts, args, parts, quick } from './options.js';
import { aCommands, aMqtt, aXmpp, bXmpp, commands as commands_, type CommandsFig, memory, startCommandDevices, stopCommandDevices, telemetry, type Env, type Fig, type TelemetryFig } from './phases.js';
import { report, type Results } from './report.js';

ensureOpenFiles(P.idle + 2_000);
const budget = new Budget(P.budgetMs);

/** Warnings and errors a node logged (pino levels 40, 50 and up), for the report. */
function scanLog(file: string): { warn: number; error: number; first: string[] } {
  const out = { warn: 0, error: 0, first: [] as string[] };
  let text = '';
  try { text = readFileSync(file, 'utf8'); } catch { return out; }
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) {
      if (/Error|error/.test(line) && out.first.length < 5) out.first.push(line.slice(0, 200));
      continue;
    }
    try {
      const rec = JSON.parse(line) as { level?: number; msg?: string; err?: unknown };
      if ((rec.level ?? 0) < 40) continue;
      if (rec.level! >= 50) out.error++; else out.warn++;
      const text = `${rec.msg}${rec.err ? `: ${typeof rec.err === 'string' ? rec.err : JSON.stringify(rec.err).slice(0, 120)}` : ''}`;
      if (out.first.length < 5 && !out.first.includes(text)) out.first.push(text);
    } catch { /* not JSON */ }
  }
  return out;
}

/** Other developers' test runs on the machine, for the first line. */
function tapProcesses(): number {
  try {
    return execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n').filter((l) => /\btap\b/.test(l) && !/grep/.test(l)).length;
  } catch {
    return -1;
  }
}

async function main(): Promise<number> {
  const work = mkdtempSync(join(tmpdir(), 'switchboard-cluster-bench-'));
  chmodSync(work, 0o755); // PostgreSQL runs as its own user and must reach its dir
  log(`work dir ${work}; ${machine()}; load ${fmt(load1(), 2)}; tap processes ${tapProcesses()}; switchboard ${gitDescribe()}; ` +
    `Redis ${redisVersion()}, InfluxDB ${influxVersion()}; ${cpus().length} CPUs; parts ${[...parts].join(',')}`);
  const results: Results = {};
  const started: NodeProc[] = [];
  const logs: Results['logs'] = {};
  let ok = false;
  const [redis, pg, influx] = await Promise.all([startRedis(join(work, 'redis')), startPostgres(join(work, 'postgres')), startInflux(join(work, 'influx'))]);
  try {
    log(`PostgreSQL ${pg.version}`);
    const shared: Shared = { influxUrl: influx.url, redisUrl: redis.url, postgresUrl: await pg.database('switchboard'), template: join(work, 'template') };
    let t = Date.now();
    provision(work, shared, accounts, accounts);
    log(`provisioned ${fmt(accounts.devices.length)} devices and ${fmt(accounts.accounts.length)} accounts into SQLite (standalone) and PostgreSQL (cluster) in ${fmt((Date.now() - t) / 1000, 1)} s`);

    let nodeNo = 0;
    const start = async (id: string | null, db: string, inspect = false): Promise<NodeProc> => {
      const t0 = Date.now();
      const n = await startNode(join(work, `${++nodeNo}-${id ?? 'standalone'}`), shared, db, id, [], inspect);
      started.push(n);
      log(`${n.name} started in ${fmt((Date.now() - t0) / 1000, 1)} s (pid ${n.pid}, ports ${JSON.stringify(n.ports)})`);
      return n;
    };
    const stop = async (...nodes: NodeProc[]) => {
      await Promise.all(nodes.map((n) => n.stop()));
      for (const n of nodes) {
        logs[`${n.name} (${n.logFile.split('/').at(-2)})`] = scanLog(n.logFile);
        started.splice(started.indexOf(n), 1);
      }
    };

    const gen = (file: string) => new URL(file, import.meta.url);
    const mq = gen('../common/mqtt-loadgen.ts');
    await withWorkers([
      [gen('../xmpp/loadgen.ts'), 'xmpp generator'], [gen('./xmpp-gen.ts'), 'xmpp cross-node generator'],
      [mq, 'mqtt generator 1'], [mq, 'mqtt generator 2'], [mq, 'mqtt generator 3'],
      [gen('../commands/loadgen.ts'), 'command devices'], [gen('../commands/loadgen.ts'), 'command service'],
    ], async ([xmpp, xgen, mq1, mq2, mq3, cmdDev, cmdSvc]) => {
      const e: Env = { redis, pg, influx, xmpp: xmpp!, xgen: xgen!, mq: [mq1!, mq2!, mq3!], cmdDev: cmdDev!, cmdSvc: cmdSvc! };
      let a: NodeProc;
      if (parts.has('a')) {
        const [s, c] = await Promise.all([start(null, 'standalone'), start('a', 'cluster')]);
        a = c;
        const ra: NonNullable<Results['a']> = { xmpp: { standalone: [], cluster: [] }, mqtt: { standalone: [], cluster: [] }, telemetry: { standalone: [], cluster: [] }, commands: { standalone: [], cluster: [] } };
        results.a = ra;
        for (let round = 1; round <= P.rounds; round++) {
          const others = await waitForeignQuiet(quick ? 2_000 : 5_000);
          log(`--- part a, round ${round}/${P.rounds} (load ${fmt(load1(), 2)}, others ${fmt(others)}% of a core)`);
          const order: Array<[NodeProc, boolean]> = round % 2 ? [[s, false], [c, true]] : [[c, true], [s, false]];
          const put = (k: 'xmpp' | 'mqtt' | 'telemetry' | 'commands', clustered: boolean, f: Fig) => ra[k][clustered ? 'cluster' : 'standalone'].push(f);
          for (const [n, cl] of order) put('xmpp', cl, await aXmpp(e, n, cl));
          for (const [n, cl] of order) put('mqtt', cl, await aMqtt(e, n, cl));
          for (const [n, cl] of order) put('telemetry', cl, await telemetry(e, [n], cl ? 'cluster' : 'standalone', cl, `${n.name}${cl ? ' (cluster of one)' : ''} telemetry`));
          for (const [n, cl] of order) put('commands', cl, await aCommands(e, n, cl));
        }
        await stop(s);
      } else {
        a = await start('a', 'cluster');
      }
      const rc: Record<string, TelemetryFig[]> = {};
      const partC = async (nodes: NodeProc[]) => {
        if (!parts.has('c')) return;
        const key = `${nodes.length} node${nodes.length > 1 ? 's' : ''}`;
        rc[key] = [];
        for (let i = 1; i <= P.cRuns; i++) rc[key].push(await telemetry(e, nodes, 'cluster', true, `part c, ${key}, run ${i}`));
        results.c = rc;
      };
      log('--- part c, 1 node');
      await partC([a]);
      /** B measured directly: node b, with no devices, hears every sample node a accepts. */
      const hearOnly = async (b: NodeProc) => {
        if (!parts.has('c')) return;
        const key = 'b hears only';
        rc[key] = [];
        for (let i = 1; i <= P.cRuns; i++) rc[key].push(await telemetry(e, [a!], 'cluster', true, `part c, devices on a, ${key}, run ${i}`, [b]));
        results.c = rc;
      };
      if (parts.has('b') || parts.has('c')) {
        const b = await start('b', 'cluster');
        if (parts.has('b')) {
          log('--- part b: two nodes');
          const xmppB = await bXmpp(e, a, b);
          await startCommandDevices(e, a);
          const commands = { cross: [] as CommandsFig[], same: [] as CommandsFig[] };
          try {
            for (const where of quick ? ['cross', 'same'] as const : ['cross', 'same', 'cross'] as const) {
              const label = where === 'cross' ? 'commands, service on B → devices on A' : 'commands, service and devices on A';
              commands[where].push(await commands_(e, [a, b], where === 'cross' ? b : a, true, label));
            }
          } finally {
            await stopCommandDevices(e);
          }
          results.b = { xmpp: xmppB, commands };
        }
        log('--- part c, 2 nodes');
        await partC([a, b]);
        await hearOnly(b);
        if (parts.has('c')) {
          const c = await start('c', 'cluster');
          log('--- part c, 3 nodes');
          await partC([a, b, c]);
          await stop(c);
        }
        await stop(b);
      }
      await stop(a);
      if (parts.has('memory') && budget.fits(60_000)) {
        log('--- memory');
        const s = await start(null, 'standalone', true);
        const ms = await memory(e, [s], false);
        await stop(s);
        const [ma, mb] = await Promise.all([start('a', 'cluster', true), start('b', 'cluster', true)]);
        const mc = await memory(e, [ma!, mb!], true);
        await stop(ma!, mb!);
        results.memory = { standalone: ms, cluster: mc };
      }
      // Before withWorkers ends: it stops every server the bench started (killAll).
      const sizes = await pg.query<{ accounts: string; a: string; l: string; d: string }>(shared.postgresUrl,
        "SELECT (SELECT count(*) FROM accounts) AS accounts, pg_total_relation_size('accounts') AS a, pg_total_relation_size('last_seen') AS l, pg_database_size(current_database()) AS d");
      const z = sizes[0]!;
      results.postgres = { accounts: Number(z.accounts), accountsBytes: Number(z.a), lastSeenBytes: Number(z.l), databaseBytes: Number(z.d) };
    });
    results.logs = logs;
    ok = true;
  } finally {
    await Promise.allSettled(started.map((n) => n.stop()));
    await Promise.allSettled([redis.stop(), pg.stop(), influx.stop()]);
  }
  console.log(report(results));
  log(`total ${fmt(budget.elapsedMs / 60_000, 1)} min; load ${fmt(load1(), 2)}; tap processes ${tapProcesses()}`);
  if (args.json) {
    writeFileSync(args.json, JSON.stringify({ params: P, date: new Date().toISOString(), machine: machine(), switchboard: gitDescribe(), results }, null, 2));
    log(`figures in ${args.json}`);
  }
  if (args.keep || !ok) log(`kept ${work} (configs and logs)`);
  else rmSync(work, { recursive: true, force: true });
  return ok ? 0 : 1;
}

runMain(main, killAll);
