// bench/mqtt's report: the figures of every broker as Markdown tables (medians
// over runs), and Switchboard's against its targets (docs/benchmarks.md).
import { fmt, ratio } from '../common/util.js';
import { median } from '../common/stats.js';
import { P } from './options.js';
import type { RunResult } from './phases.js';

export function report(results: Map<string, RunResult[]>, errors: Map<string, string>): string {
  const m = (runs: RunResult[], f: (r: RunResult) => number | undefined) => median(runs.map((r) => f(r) ?? NaN));
  const lines: string[] = [];
  const head1 = ['broker', 'QoS 1 msg/s', 'QoS 1 p50 / p99 ms', 'QoS 1 µs CPU/msg', 'QoS 0 msg/s', 'QoS 0 p50 / p99 ms',
    `QoS 0 @${fmt(P.fixedRate)}/s p50 / p99 / p99.9 ms`, 'QoS 0 flood: delivered/s, p99 ms, RSS +MiB, delivery after stop s', 'CPU % server / gen (QoS 1)'];
  lines.push(`| ${head1.join(' | ')} |`, `|${head1.map(() => '---').join('|')}|`);
  for (const [name, runs] of results) {
    if (!runs.length) continue;
    lines.push(`| ${[name,
      fmt(m(runs, (r) => r.qos1?.rate)), `${fmt(m(runs, (r) => r.qos1?.p50), 2)} / ${fmt(m(runs, (r) => r.qos1?.p99), 2)}`,
      fmt(m(runs, (r) => r.qos1?.cpuUsPerMsg), 1),
      fmt(m(runs, (r) => r.qos0?.rate)), `${fmt(m(runs, (r) => r.qos0?.p50), 2)} / ${fmt(m(runs, (r) => r.qos0?.p99), 2)}`,
      `${fmt(m(runs, (r) => r.fixed?.p50), 2)} / ${fmt(m(runs, (r) => r.fixed?.p99), 2)} / ${fmt(m(runs, (r) => r.fixed?.p999), 2)}` +
        (m(runs, (r) => r.fixed?.lost) ? ` (lost ${fmt(m(runs, (r) => r.fixed?.lost))})` : ''),
      `${fmt(m(runs, (r) => r.flood?.rate))}, ${fmt(m(runs, (r) => r.flood?.p99))}, ${fmt(m(runs, (r) => r.flood?.rssGrowthMiB))}, ` +
        `${fmt(m(runs, (r) => (r.flood?.drainMs ?? NaN) / 1000), 1)}` +
        (m(runs, (r) => r.flood?.lost) ? `, ${fmt(m(runs, (r) => r.flood?.lost))} not delivered` : '') +
        (runs.some((r) => r.flood?.crashed) ? `; **crashed ${runs.filter((r) => r.flood?.crashed).length}/${runs.length}** afterwards` : ''),
      `${fmt(m(runs, (r) => r.qos1?.serverCpuPct))} / ${fmt(m(runs, (r) => r.qos1?.genCpuPct))}`,
    ].join(' | ')} |`);
  }
  const head2 = ['broker', 'connects/s sequential (first time)', `connects/s ${P.concurrency} parallel: first time / reconnecting`,
    `p99 ms of ${P.devices} connected devices (QoS 1, ${fmt(P.stallRate)} msg/s): alone → first-time storm → reconnect storm`,
    `KiB per idle device @${fmt(P.idle)}`, 'RSS MiB before → with idle devices'];
  lines.push('', `| ${head2.join(' | ')} |`, `|${head2.map(() => '---').join('|')}|`);
  for (const [name, runs] of results) {
    if (!runs.length) continue;
    lines.push(`| ${[name, fmt(m(runs, (r) => r.connSeq)), `${fmt(m(runs, (r) => r.connPar))} / ${fmt(m(runs, (r) => r.connParWarm))}`,
      `${fmt(m(runs, (r) => r.stall?.idleP99), 2)} → ${fmt(m(runs, (r) => r.stall?.stormP99), 2)} → ${fmt(m(runs, (r) => r.stall?.warmStormP99), 2)}`,
      fmt(m(runs, (r) => r.memory?.kibPerDevice), 1),
      `${fmt(m(runs, (r) => r.memory?.baselineMiB), 1)} → ${fmt(m(runs, (r) => r.memory?.rssMiB), 1)}`,
    ].join(' | ')} |`);
  }
  const sb = results.get('switchboard') ?? [];
  const ae = results.get('aedes') ?? [];
  const a1 = m(ae, (r) => r.qos1?.rate);
  const yes = (b: boolean) => (b ? 'met' : '**missed**');
  if (sb.length) {
    lines.push('', '| QoS 1 target (≥ 0.9 × bare aedes) | measured | |', '|---|---|---|');
    const q1 = m(sb, (r) => r.qos1?.rate);
    lines.push(`| the whole broker: own credentials, ACL, schema check, presence, spool commit before each PUBACK, embedded store, one subscriber on devices/+/telemetry (switchboard) | ` +
      `${fmt(q1)} vs ${fmt(a1)} msg/s = ${ratio(q1, a1)} | ${ae.length ? yes(q1 >= 0.9 * a1) : 'no aedes run'} |`);
    const p99 = m(sb, (r) => r.fixed?.p99);
    const cp = m(sb, (r) => r.connPar), sp = m(sb, (r) => r.stall?.stormP99);
    const cw = m(sb, (r) => r.connParWarm), sw = m(sb, (r) => r.stall?.warmStormP99);
    const kib = m(sb, (r) => r.memory?.kibPerDevice);
    // Phases not run (--qos1-only, --connects-only) leave no row.
    const rows = [
      [p99, `| QoS 0 p99 < 50 ms at ${fmt(P.fixedRate)} msg/s | ${fmt(p99, 2)} ms | ${yes(p99 < 50)} |`],
      [cp, `| first-time devices: connects/s as fast as the hash pool allows | ${fmt(cp)}/s (${P.concurrency} parallel) | (no fixed figure) |`],
      [sp, `| … while connected devices keep p99 < 20 ms | ${fmt(sp, 2)} ms | ${yes(sp < 20)} |`],
      [cw, `| ≥ 1,500 authenticated connects/s, reconnecting devices (verified-credential cache) | ${fmt(cw)}/s (${P.concurrency} parallel) | ${yes(cw >= 1500)} |`],
      [sw, `| … while connected devices keep p99 < 20 ms | ${fmt(sw, 2)} ms | ${yes(sw < 20)} |`],
      [kib, `| idle device < 30 KiB at ${fmt(P.idle)} | ${fmt(kib, 1)} KiB | ${yes(kib < 30)} |`],
    ] as const;
    const measured = rows.filter(([v]) => !Number.isNaN(v)).map(([, line]) => line);
    if (measured.length) lines.push('', '| target (Switchboard, the whole broker) | measured | |', '|---|---|---|', ...measured);
  }
  const loads = [...results.values()].flat();
  lines.push('', `Load average (1 min) at the start of each run: ${loads.map((r) => fmt(r.load1, 2)).join(', ')}; ` +
    `CPU used by other processes during runs: up to ${fmt(Math.max(0, ...loads.map((r) => r.foreignCpuPct)))}% of a core.`);
  for (const [name, e] of errors) lines.push('', `ERROR ${name}: ${e}`);
  return lines.join('\n');
}
