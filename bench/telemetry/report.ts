// bench/telemetry's report: the figures of every pipeline as a Markdown table
// (medians over runs), the memory run, and Switchboard's against its targets
// (docs/benchmarks.md).
import { median } from '../common/stats.js';
import { fmt, ratio } from '../common/util.js';
import type { MemoryResult, PipeResult } from './mqtt-pipeline.js';
import { MEMORY_LABEL, P, memoryEmbedded } from './options.js';

const LABEL: Record<string, string> = {
  switchboard: 'Switchboard → InfluxDB (spool on)',
  peer: 'Mosquitto + mqtt.js → `influx` writer',
  raw: 'raw line protocol → InfluxDB',
  'aedes-sub': 'bare aedes → one QoS 1 subscriber, no store (delivered/s)',
  aedes: 'bare aedes, QoS 1, no subscriber, no store (acknowledged/s)',
  embedded: 'Switchboard → embedded store',
};

export function report(results: Map<string, PipeResult[]>, mem: MemoryResult | undefined, errors: Map<string, string>): string {
  const m = (runs: PipeResult[], f: (r: PipeResult) => number | undefined) => median(runs.map((r) => f(r) ?? NaN));
  const head = ['pipeline', 'landed/s', 'accepted/s', 'publish → landed p50 / p99 ms', 'distinct points stored (per run)', 'spool backlog at end',
    'RSS MiB start → end', 'CPU % pipeline / devices'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const [name, runs] of results) {
    if (!runs.length) continue;
    const missing = runs.filter((r) => r.stored !== undefined).map((r) => r.sent! - r.stored!);
    lines.push(`| ${[LABEL[name] ?? name, fmt(m(runs, (r) => r.landedPerSec)), fmt(m(runs, (r) => r.acceptedPerSec)),
      name === 'raw' ? `POST ${fmt(m(runs, (r) => r.p50))} / ${fmt(m(runs, (r) => r.p99))}` : `${fmt(m(runs, (r) => r.p50))} / ${fmt(m(runs, (r) => r.p99))}`,
      missing.length ? (missing.every((x) => x === 0) ? 'all' : `${missing.map((x) => fmt(x)).join(', ')} missing`) : '–',
      fmt(m(runs, (r) => r.backlogAtEnd)),
      runs[0]!.rssStartMiB !== undefined ? `${fmt(m(runs, (r) => r.rssStartMiB), 1)} → ${fmt(m(runs, (r) => r.rssEndMiB), 1)}` : '–',
      `${fmt(m(runs, (r) => r.cpuPct))} / ${fmt(m(runs, (r) => r.genCpuPct))}`,
    ].join(' | ')} |`);
  }
  if (mem) {
    const s = mem.rssSeries ?? [];
    const slope = regressionSlope(s.slice(Math.min(2, s.length - 1)));
    const { first, last } = thirds(s);
    lines.push('', `Memory run (${MEMORY_LABEL}, ${fmt(P.memoryS)} s at full load): RSS ${fmt(mem.rssStartMiB, 1)} MiB at the start of the ` +
      `measured window, ${fmt(mem.rssEndMiB, 1)} MiB at its end, max ${fmt(mem.rssMaxMiB, 1)} MiB; trend ${fmt(slope * 60_000, 2)} MiB/min; ` +
      `median of the first third ${fmt(first, 1)} MiB, of the last third ${fmt(last, 1)} MiB; ` +
      `${fmt(mem.landedPerSec)} landed/s, publish → landed p99 ${fmt(mem.p99)} ms; samples (s, MiB): ` +
      s.map(([t, v]) => `${fmt((t - s[0]![0]) / 1000)}:${fmt(v, 0)}`).join(' '));
  }
  const sb = results.get('switchboard') ?? [], pe = results.get('peer') ?? [], ae = results.get('aedes-sub') ?? [], alone = results.get('aedes') ?? [];
  if (sb.length) {
    const l = m(sb, (r) => r.landedPerSec), p = m(pe, (r) => r.landedPerSec), a = m(ae, (r) => r.landedPerSec), p99 = m(sb, (r) => r.p99);
    const a0 = m(alone, (r) => r.landedPerSec);
    const yes = (b: boolean) => (b ? 'met' : '**missed**');
    lines.push('', '| target (Switchboard → InfluxDB) | measured | |', '|---|---|---|',
      `| landed/s ≥ 1.2 × peer pipeline | ${fmt(l)} vs ${fmt(p)} = ${ratio(l, p)} | ${pe.length ? yes(l >= 1.2 * p) : 'no peer run'} |`,
      `| landed/s ≥ 0.7 × bare aedes QoS 1 (delivering to one subscriber, the issue's setup) | ${fmt(l)} vs ${fmt(a)} = ${ratio(l, a)} | ${ae.length ? yes(l >= 0.7 * a) : 'no aedes-sub run'} |`,
      ...(alone.length ? [`| (for reference: bare aedes acknowledging QoS 1 with no subscriber) | ${fmt(l)} vs ${fmt(a0)} = ${ratio(l, a0)} | – |`] : []),
      `| p99 publish → landed < 2 s | ${fmt(p99)} ms | ${yes(p99 < 2000)} |`);
    if (mem) {
      // RSS saw-tooths with garbage collection; compared are the medians of
      // the first and the last third of the run, flat meaning within 10%.
      const { first, last } = thirds(mem.rssSeries ?? []);
      lines.push(`| memory flat over ${fmt(P.memoryS / 60, 1)} min${memoryEmbedded ? ' (embedded store, not the target)' : ''} | RSS median ${fmt(first, 1)} MiB (first third) → ${fmt(last, 1)} MiB (last third) | ` +
        `${yes(last <= first * 1.1)} (within 10%) |`);
    }
  }
  const all = [...results.values()].flat();
  lines.push('', `Load average (1 min) after each run: ${all.map((r) => fmt(r.load1, 2)).join(', ')}; CPU used by other processes ` +
    `during runs: up to ${fmt(Math.max(0, ...all.map((r) => r.foreignCpuPct)))}% of a core.`);
  for (const [name, runs] of results) for (const r of runs) if (r.note) lines.push('', `NOTE ${name}: ${r.note}`);
  for (const [name, e] of errors) lines.push('', `ERROR ${name}: ${e}`);
  return lines.join('\n');
}

/** Medians of the first and the last third of a series' values. */
function thirds(pts: Array<[number, number]>): { first: number; last: number } {
  const n = Math.floor(pts.length / 3);
  return { first: median(pts.slice(0, n).map(([, v]) => v)), last: median(pts.slice(pts.length - n).map(([, v]) => v)) };
}

/** Least-squares slope of (t ms, y) pairs, per ms. */
function regressionSlope(pts: Array<[number, number]>): number {
  if (pts.length < 2) return NaN;
  const n = pts.length;
  const mx = pts.reduce((a, [x]) => a + x, 0) / n, my = pts.reduce((a, [, y]) => a + y, 0) / n;
  let num = 0, den = 0;
  for (const [x, y] of pts) { num += (x - mx) * (y - my); den += (x - mx) ** 2; }
  return den ? num / den : NaN;
}
