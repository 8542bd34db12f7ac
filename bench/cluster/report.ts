// bench/cluster's report: Markdown tables of the figures of run.ts (medians over
// runs), each target said met or missed.
import { fmt, median } from '../common/stats.js';
import type { CommandsFig, CrossXmpp, Fig, MemoryFig, TelemetryFig } from './phases.js';
import { P } from './options.js';

export interface Results {
  a?: Record<'xmpp' | 'mqtt' | 'telemetry' | 'commands', { standalone: Fig[]; cluster: Fig[] }>;
  b?: { xmpp: CrossXmpp; commands: { cross: CommandsFig[]; same: CommandsFig[] } };
  c?: Record<string, TelemetryFig[]>;
  memory?: { standalone?: MemoryFig; cluster?: MemoryFig };
  postgres?: { accounts: number; accountsBytes: number; lastSeenBytes: number; databaseBytes: number };
  logs?: Record<string, { warn: number; error: number; first: string[] }>;
}

const yes = (b: boolean) => (b ? 'met' : '**missed**');
const med = <T>(xs: T[], f: (x: T) => number | undefined) => median(xs.map((x) => f(x) ?? NaN));
const redis3 = (f: Fig[]) => {
  const r = f.map((x) => x.redis).filter(Boolean);
  if (!r.length) return '–';
  return `${fmt(median(r.map((x) => x!.cmds)), 2)} / ${fmt(median(r.map((x) => x!.bytesIn)))} / ${fmt(median(r.map((x) => x!.bytesOut)))}`;
};
const byCmd = (f: Fig[]) => {
  const r = f.map((x) => x.redis).filter(Boolean);
  const keys = new Set(r.flatMap((x) => Object.keys(x!.byCommand)));
  const m = [...keys].map((k) => [k, median(r.map((x) => x!.byCommand[k] ?? 0))] as const).filter(([, v]) => v >= 0.005);
  return m.length ? m.map(([k, v]) => `${k} ${fmt(v, 2)}`).join(', ') : 'none';
};

/**
 * Node CPU per sample (all samples accepted in the cluster) against the node's share
 * f of them: us = own·f + other·(1 − f), least squares over every node of every run.
 */
export function costFit(runs: TelemetryFig[], main = ''): { own: number; other: number } {
  let sff = 0, sfg = 0, sgg = 0, sfy = 0, sgy = 0;
  for (const x of runs) {
    Object.keys(x.usOwn).forEach((name, i) => {
      const y = x.us[`${name}${main}`];
      const f = x.share[i]!, g = 1 - f;
      if (y === undefined || !Number.isFinite(y)) return;
      sff += f * f; sfg += f * g; sgg += g * g; sfy += f * y; sgy += g * y;
    });
    // A node with no devices of its own: B alone (f = 0, g = 1).
    for (const h of Object.values(x.heard ?? {})) {
      const y = main ? h.usMain : h.us;
      if (Number.isFinite(y)) (sgg += 1, sgy += y);
    }
  }
  const det = sff * sgg - sfg * sfg;
  return det ? { own: (sfy * sgg - sgy * sfg) / det, other: (sgy * sff - sfy * sfg) / det } : { own: NaN, other: NaN };
}

export function report(r: Results): string {
  const out: string[] = [];
  const row = (cells: Array<string | number>) => out.push(`| ${cells.join(' | ')} |`);
  const head = (cells: string[]) => (row(cells), out.push(`|${cells.map(() => '---').join('|')}|`));

  if (r.a) {
    out.push(`### a. Cluster of one node against standalone (medians of ${r.a.xmpp.standalone.length} alternations)`, '');
    head(['measure', 'standalone', 'cluster of one', 'cluster / standalone (per round)', 'target ≥ 0.8', 'node CPU µs/msg standalone → cluster', 'Redis per msg: commands / B in / B out']);
    const lab = { xmpp: 'XMPP msgs/s (50 pairs)', mqtt: 'MQTT QoS 1 msg/s (48 → 1 subscriber)', telemetry: 'telemetry landed in InfluxDB /s (48 devices)', commands: 'XEP-0050 commands/s (reference: no target)' };
    for (const k of ['xmpp', 'mqtt', 'telemetry', 'commands'] as const) {
      const { standalone: s, cluster: c } = r.a[k];
      const rs = med(s, (x) => x.rate), rc = med(c, (x) => x.rate);
      const per = c.map((x, i) => (s[i] ? fmt(x.rate / s[i]!.rate, 2) : '–')).join(' / ');
      const us = (xs: Fig[], main = '') => med(xs, (x) => x.us[`standalone${main}`] ?? x.us[`node a${main}`]);
      row([lab[k], fmt(rs), fmt(rc), `**${fmt(rc / rs, 2)}** (${per})`, k === 'commands' ? '–' : yes(rc / rs >= 0.8),
        `${fmt(us(s), 1)} → ${fmt(us(c), 1)} (main thread ${fmt(us(s, ' main'), 1)} → ${fmt(us(c, ' main'), 1)})`, redis3(c)]);
    }
    out.push('', `Redis commands per message, cluster of one: XMPP ${byCmd(r.a.xmpp.cluster)}; MQTT ${byCmd(r.a.mqtt.cluster)}; telemetry ${byCmd(r.a.telemetry.cluster)}.`);
    const tel = r.a.telemetry;
    const missing = [...tel.standalone, ...tel.cluster].reduce((a, x) => a + ((x as TelemetryFig).missing ?? 0), 0);
    out.push(`Telemetry accepted/s: standalone ${fmt(med(tel.standalone, (x) => (x as TelemetryFig).accepted))}, cluster ${fmt(med(tel.cluster, (x) => (x as TelemetryFig).accepted))}; samples sent and not landed: ${fmt(missing)}.`);
    const mq = r.a.mqtt;
    const cmd = r.a.commands as { standalone: CommandsFig[]; cluster: CommandsFig[] };
    out.push(`Commands at ${fmt(P.commandRate)}/s, round trip p50 / p99 ms: standalone ${fmt(med(cmd.standalone, (x) => x.atRate.p50), 2)} / ${fmt(med(cmd.standalone, (x) => x.atRate.p99), 2)}, cluster ${fmt(med(cmd.cluster, (x) => x.atRate.p50), 2)} / ${fmt(med(cmd.cluster, (x) => x.atRate.p99), 2)}; round trip p99 with 200 in flight: standalone ${fmt(med(cmd.standalone, (x) => x.rtt.p99), 2)}, cluster ${fmt(med(cmd.cluster, (x) => x.rtt.p99), 2)}.`);
    const foreign = Math.max(...Object.values(r.a).flatMap((v) => [...v.standalone, ...v.cluster]).map((x) => x.foreignCpuPct));
    out.push(`Other processes used up to ${fmt(foreign)}% of a core during part a's windows.`);
    out.push(`MQTT QoS 1 p99 ms: standalone ${fmt(med(mq.standalone, (x) => (x as Fig & { p99: number }).p99), 2)}, cluster ${fmt(med(mq.cluster, (x) => (x as Fig & { p99: number }).p99), 2)}.`, '');
  }

  if (r.b) {
    const { xmpp, commands } = r.b;
    out.push('### b. Across two nodes (A, B)', '');
    head(['measure', 'same node (A → A)', 'across nodes (A → B)', 'target', '']);
    const t = (s: 'same' | 'cross') => xmpp.throughput[s];
    row(['XMPP msgs/s, 50 pairs', fmt(med(t('same'), (x) => x.rate)), fmt(med(t('cross'), (x) => x.rate)), '–', '']);
    const cpu = (s: 'same' | 'cross') => `${fmt(med(t(s), (x) => x.us['node a']), 1)} / ${fmt(med(t(s), (x) => x.us['node b']), 1)} / ${fmt(med(t(s), (x) => x.us.redis), 1)}`;
    row(['CPU µs per stanza: node A / node B / Redis', cpu('same'), cpu('cross'), '–', '']);
    row(['Redis per stanza: commands / B in / B out', redis3(t('same')), redis3(t('cross')), '–', '']);
    const l = xmpp.latency;
    row([`p50 / p99 / p99.9 ms at ${fmt(P.xmppRate)} stanzas/s`, `${fmt(l.same.p50, 2)} / ${fmt(l.same.p99, 2)} / ${fmt(l.same.p999, 2)}`,
      `${fmt(l.cross.p50, 2)} / ${fmt(l.cross.p99, 2)} / ${fmt(l.cross.p999, 2)}`, 'added p99 < 5 ms', '']);
    const addedP99 = l.cross.p99 - l.same.p99;
    row(['added p99 across nodes', '', `**${fmt(addedP99, 2)} ms**`, yes(addedP99 < 5), `lost: ${l.same.lost} / ${l.cross.lost}`]);
    out.push('');
    head(['XEP-0050 commands to 100 MQTT devices on A', 'service on A', 'service on B', 'target', '']);
    const c = (s: 'same' | 'cross') => commands[s];
    const crossRate = med(c('cross'), (x) => x.rate);
    row([`commands/s (${P.commandsInflight} in flight)`, fmt(med(c('same'), (x) => x.rate)), `**${fmt(crossRate)}**`, '≥ 3,000/s', yes(crossRate >= 3000)]);
    row(['round trip p50 / p99 ms (200 in flight)', `${fmt(med(c('same'), (x) => x.rtt.p50), 2)} / ${fmt(med(c('same'), (x) => x.rtt.p99), 2)}`,
      `${fmt(med(c('cross'), (x) => x.rtt.p50), 2)} / ${fmt(med(c('cross'), (x) => x.rtt.p99), 2)}`, '', '']);
    row([`at ${fmt(P.commandRate)}/s: round trip p50 / p99 ms`, `${fmt(med(c('same'), (x) => x.atRate.p50), 2)} / ${fmt(med(c('same'), (x) => x.atRate.p99), 2)}`,
      `${fmt(med(c('cross'), (x) => x.atRate.p50), 2)} / ${fmt(med(c('cross'), (x) => x.atRate.p99), 2)}`, '', '']);
    row([`at ${fmt(P.commandRate)}/s: added (− device time) p99 ms`, fmt(med(c('same'), (x) => x.added.p99), 2), fmt(med(c('cross'), (x) => x.added.p99), 2), '', '']);
    const ccpu = (s: 'same' | 'cross') => `${fmt(med(c(s), (x) => x.us['node a']), 1)} / ${fmt(med(c(s), (x) => x.us['node b']), 1)} / ${fmt(med(c(s), (x) => x.us.redis), 1)}`;
    row(['CPU µs per command: node A / node B / Redis', ccpu('same'), ccpu('cross'), '', '']);
    row(['Redis per command: commands / B in / B out', redis3(c('same')), redis3(c('cross')), '', '']);
    const errs = [...c('same'), ...c('cross')].filter((x) => x.errors);
    out.push('', `Redis commands per stanza across nodes: ${byCmd(t('cross'))}; per command across nodes: ${byCmd(c('cross'))}.`);
    if (errs.length) out.push(`Command errors: ${errs.map((x) => `${x.errors} (${x.firstError ?? ''})`).join('; ')}.`);
    out.push('');
  }

  if (r.c) {
    out.push(`### c. Telemetry on 1, 2, 3 nodes: CPU per sample (48 devices shared out over the nodes; medians of ${P.cRuns})`, '');
    head(['nodes', 'landed/s', 'accepted/s', 'µs CPU per sample a node accepted, each node (main thread)', 'all nodes µs per sample (main threads)', 'Redis µs / sample', 'influxd µs / sample', 'PostgreSQL µs / sample', 'Redis per sample: commands / B in / B out']);
    for (const [n, runs] of Object.entries(r.c)) {
      const names = Object.keys(runs[0]!.usOwn);
      const nodesUs = (x: TelemetryFig, main = '') => names.reduce((a, k) => a + (x.us[`${k}${main}`] ?? 0), 0);
      row([n, fmt(med(runs, (x) => x.rate)), fmt(med(runs, (x) => x.accepted)),
        names.map((k) => `${fmt(med(runs, (x) => x.usOwn[k]), 1)} (${fmt(med(runs, (x) => x.usOwnMain[k]), 1)})`).join(' / '),
        `${fmt(med(runs, (x) => nodesUs(x)), 1)} (${fmt(med(runs, (x) => nodesUs(x, ' main')), 1)})`,
        fmt(med(runs, (x) => x.us.redis), 1), fmt(med(runs, (x) => x.us.influxd), 1), fmt(med(runs, (x) => x.us.postgres), 2), redis3(runs)]);
    }
    const fit = (main: string) => costFit(Object.values(r.c!).flat(), main);
    const f = fit(''), fm = fit(' main');
    out.push('', `Least-squares fit over every node of every part c run, the hearing-only node's included (CPU per sample accepted cluster-wide = A × the node's share + B × the rest): ` +
      `a node spends **A = ${fmt(f.own, 1)} µs** (main thread ${fmt(fm.own, 1)}) per sample it accepts and **B = ${fmt(f.other, 1)} µs** (main thread ${fmt(fm.other, 1)}) per sample another node accepted (its \`s\` message on the bus).`);
    const hearing = Object.values(r.c).flat().flatMap((x) => Object.entries(x.heard ?? {}).map(([n, h]) => ({ n, ...h })));
    if (hearing.length)
      out.push('', `Measured directly (devices on node a only): ${hearing[0]!.n}, with no devices of its own, spends ${hearing.map((h) => `${fmt(h.us, 1)} µs (main thread ${fmt(h.usMain, 1)})`).join(', ')} per sample node a accepted (the run's B; its idle work included).`);
    const missing = Object.values(r.c).flat().reduce((a, x) => a + x.missing, 0);
    out.push('', `Samples sent and not landed: ${fmt(missing)}. Redis commands per sample: ${Object.entries(r.c).map(([n, runs]) => `${n}: ${byCmd(runs)}`).join('; ')}.`, '');
  }

  if (r.memory) {
    const { standalone: s, cluster: c } = r.memory;
    out.push(`### Memory: ${fmt(c?.devices ?? s?.devices)} idle MQTT devices connected to one node`, '');
    head(['', 'KiB RSS (heap + external after GC) per idle device, its node', 'KiB RSS (heap + external after GC) per device, the other node (its session copy)', 'Redis bytes per device', 'CPU ms per connect (cold login): node / other node / Redis / PostgreSQL', 'connects/s']);
    if (s) row(['standalone', `${fmt(s.kibPerDevice.standalone, 1)} (${fmt(s.heapKibPerDevice.standalone, 2)})`, '–', '–', fmt(s.cpuMsPerConnect.standalone, 2), fmt(s.devices / s.connectSeconds)]);
    if (c) {
      const [a, b] = Object.keys(c.kibPerDevice) as [string, string];
      row(['cluster (2 nodes)', `${fmt(c.kibPerDevice[a], 1)} (${fmt(c.heapKibPerDevice[a], 2)})`, `${fmt(c.kibPerDevice[b], 1)} (${fmt(c.heapKibPerDevice[b], 2)})`, fmt(c.redisBytesPerDevice),
        `${fmt(c.cpuMsPerConnect[a], 2)} / ${fmt(c.cpuMsPerConnect[b], 2)} / ${fmt(c.cpuMsPerConnect.redis, 2)} / ${fmt(c.cpuMsPerConnect.postgres, 2)}`, fmt(c.devices / c.connectSeconds)]);
      if (c.redisPerConnect) out.push('', `Redis per connect: ${fmt(c.redisPerConnect.cmds, 1)} commands (${Object.entries(c.redisPerConnect.byCommand).map(([k, v]) => `${k} ${v}`).join(', ')}), ${fmt(c.redisPerConnect.bytesIn)} B in, ${fmt(c.redisPerConnect.bytesOut)} B out.`);
    }
    out.push('');
  }
  if (r.postgres) {
    const p = r.postgres;
    out.push(`PostgreSQL: ${fmt(p.accounts)} accounts, table accounts ${fmt(p.accountsBytes / 1024)} KiB (${fmt(p.accountsBytes / p.accounts)} B per account, indexes included), last_seen ${fmt(p.lastSeenBytes / 1024)} KiB, database ${fmt(p.databaseBytes / 2 ** 20, 1)} MiB.`, '');
  }
  const windows = [
    ...Object.values(r.a ?? {}).flatMap((v) => [...v.standalone, ...v.cluster]),
    ...(r.b ? [...r.b.xmpp.throughput.same, ...r.b.xmpp.throughput.cross, ...r.b.commands.same, ...r.b.commands.cross] : []),
    ...Object.values(r.c ?? {}).flat(),
  ];
  if (windows.length) out.push(`Other processes on the machine used up to ${fmt(Math.max(...windows.map((x) => x.foreignCpuPct)))}% of a core in a measured window (median ${fmt(median(windows.map((x) => x.foreignCpuPct)))}%).`, '');
  if (r.logs) {
    const bad = Object.entries(r.logs).filter(([, l]) => l.warn || l.error);
    out.push(bad.length ? `Node logs with warnings or errors: ${bad.map(([n, l]) => `${n}: ${l.warn} warn, ${l.error} error (${l.first.join(' | ')})`).join('; ')}.` : 'No warning or error in any node\'s log.');
  }
  return out.join('\n');
}
