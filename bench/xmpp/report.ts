// bench/xmpp's report: the figures of every server as a Markdown table (medians
// over runs), with a warning when other processes disturbed the measurements.
import { fmt, median } from '../common/stats.js';
import { P } from './options.js';
import type { RunResult } from './phases.js';

export function report(results: Map<string, RunResult[]>, errors: Map<string, string>): string {
  const [lo, hi] = P.idleLevels as [number, number];
  const head = ['server', 'msgs/s (50 pairs)', 'server CPU µs/msg', `p50 ms @${fmt(P.rate)}/s`, `p99 ms @${fmt(P.rate)}/s`,
    'logins/s seq', `logins/s ${P.loginConcurrency} par`, `KiB/conn @${fmt(lo)}`, `KiB/conn @${fmt(hi)}`,
    'CPU % server / generator'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  let foreign = 0;
  for (const [name, runs] of results) {
    if (runs.length === 0) continue;
    const m = (f: (r: RunResult) => number | undefined) => median(runs.map((r) => f(r) ?? NaN));
    foreign = Math.max(foreign, ...runs.map((r) => Math.max(r.foreignCpuPct ?? 0, r.memory?.foreignCpuPct ?? 0)));
    lines.push(`| ${[name, fmt(m((r) => r.throughput)), fmt(m((r) => r.cpuUsPerStanza), 1), fmt(m((r) => r.p50), 2),
      fmt(m((r) => r.p99), 2), fmt(m((r) => r.loginsSeq)), fmt(m((r) => r.loginsPar)),
      fmt(m((r) => r.memory?.kibPerConn[lo]), 1), fmt(m((r) => r.memory?.kibPerConn[hi]), 1),
      `${fmt(m((r) => r.serverCpuPct))} / ${fmt(m((r) => r.genCpuPct))}`].join(' | ')} |`);
  }
  if (foreign > 20) lines.push(`\nWARNING: other processes used up to ${fmt(foreign)}% of a core during measurements.`);
  for (const [name, e] of errors) lines.push(`\nERROR ${name}: ${e}`);
  return lines.join('\n');
}
