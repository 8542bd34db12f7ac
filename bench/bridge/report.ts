// bench/bridge's report: landed/s of each path as a Markdown table (medians over
// runs), the bridged path against its target (docs/benchmarks.md), and the load
// before each run.
import { median } from '../common/stats.js';
import { fmt } from '../common/util.js';
import type { RunResult } from './measure.js';
import { LABEL, P, type Mode } from './options.js';

export function report(results: RunResult[], errors: string[]): string {
  const by = (m: Mode) => results.filter((r) => r.mode === m);
  const med = (rs: RunResult[], f: (r: RunResult) => number) => median(rs.map(f));
  const lines: string[] = [];
  const head = ['path', 'landed/s', 'runs (landed/s)', 'devices publish/s', 'publish → landed p50 / p99 ms',
    'stored / sent', 'Switchboard CPU µs/sample', 'CPU % of a core: switchboard / mosquitto / influxd / devices'];
  lines.push(`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`);
  for (const m of ['direct', 'bridged'] as const) {
    const rs = by(m);
    if (!rs.length) continue;
    lines.push(`| ${[LABEL[m], `**${fmt(med(rs, (r) => r.landedPerSec))}**`, rs.map((r) => fmt(r.landedPerSec)).join(', '),
      fmt(med(rs, (r) => r.publishPerSec)), `${fmt(med(rs, (r) => r.p50))} / ${fmt(med(rs, (r) => r.p99))}`,
      rs.every((r) => r.stored === r.samples) ? `all (${fmt(rs[0]!.samples)})` : rs.map((r) => `${fmt(r.stored)} / ${fmt(r.samples)}`).join('; '),
      fmt(med(rs, (r) => r.cpuUsPerSample)),
      `${fmt(med(rs, (r) => r.cpu.switchboard))} / ${fmt(med(rs, (r) => r.cpu.mosquitto))} / ${fmt(med(rs, (r) => r.cpu.influxd))} / ${fmt(med(rs, (r) => r.cpu.devices))}`,
    ].join(' | ')} |`);
  }
  const d = med(by('direct'), (r) => r.landedPerSec), b = med(by('bridged'), (r) => r.landedPerSec);
  if (by('direct').length && by('bridged').length) {
    lines.push('', '| target | measured | |', '|---|---|---|',
      `| bridged landed/s ≥ ${P.target * 100} % of direct | ${fmt(b)} / ${fmt(d)} = **${fmt((b / d) * 100)} %** | ${b >= P.target * d ? 'met' : '**missed**'} |`);
  }
  lines.push('', 'Load before each run (uptime; runs wait up to 2 min for a 1-minute load ≤ 1.5):');
  for (const r of results) {
    lines.push(`- ${r.tag}: ${r.uptime.replace(/^.*load average/, 'load average')}` +
      (r.loadWaitS ? ` (after waiting ${r.loadWaitS} s${r.load1 > P.maxLoad ? ', still above 1.5' : ''})` : '') +
      `; CPU used by other processes during the run: ${fmt(Math.max(0, r.foreignCpuPct))}% of a core` +
      (r.incomplete ? `; INCOMPLETE: ${r.incomplete}` : ''));
  }
  for (const e of errors) lines.push('', `ERROR ${e}`);
  return lines.join('\n');
}
