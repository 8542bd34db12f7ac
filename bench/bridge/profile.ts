// Summary of a V8 CPU profile (`node --cpu-prof`), as text: where the broker
// spent its time during a bench run, by package and by function (self time,
// and total time including callees). Also usable on its own:
//   node --import tsx bench/bridge/profile.ts FILE.cpuprofile [TOP]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface CallFrame { functionName: string; url: string; lineNumber: number; columnNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[] }
interface CpuProfile { nodes: ProfileNode[]; startTime: number; endTime: number; samples: number[]; timeDeltas: number[] }

const REPO = fileURLToPath(new URL('../..', import.meta.url));

function where(url: string): string {
  let u = url.replace(/^file:\/\//, '');
  if (u.startsWith(REPO)) u = u.slice(REPO.length);
  return u;
}

/** The package or part of the tree a frame belongs to. */
function area(f: CallFrame): string {
  if (!f.url) return f.functionName.startsWith('(') ? f.functionName : '(native)';
  if (f.url.startsWith('node:')) return 'node: (core)';
  const u = where(f.url);
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u);
  if (nm) return nm[1]!;
  const m = /^(?:dist\/)?(src\/[^/]+|bridges\/[^/]+|schemas|devices)/.exec(u);
  return m ? m[1]! : u;
}

function key(f: CallFrame): string {
  return `${f.functionName || '(anonymous)'}  ${f.url ? `${where(f.url)}:${f.lineNumber + 1}` : ''}`.trim();
}

export interface ProfileSummary { totalMs: number; idleMs: number; text: string }

/**
 * `window`: [from, to] in µs of the monotonic clock (process.hrtime, which
 * V8's profile timestamps share on Linux): only samples inside it count, so
 * start-up and shutdown stay out of the figures.
 */
export function summarize(file: string, top = 25, window?: [number, number]): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  // Self time per node: the interval after each sample is charged to it.
  const selfUs = new Map<number, number>();
  let ts = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    ts += p.timeDeltas[i] ?? 0;
    if (window && (ts < window[0] || ts > window[1])) continue;
    const dt = p.timeDeltas[i + 1] ?? 0;
    selfUs.set(p.samples[i]!, (selfUs.get(p.samples[i]!) ?? 0) + Math.max(0, dt));
  }
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const areas = new Map<string, number>();
  let totalUs = 0, idleUs = 0;
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    totalUs += us;
    if (n.callFrame.functionName === '(idle)') { idleUs += us; continue; }
    const k = key(n.callFrame);
    self.set(k, (self.get(k) ?? 0) + us);
    areas.set(area(n.callFrame), (areas.get(area(n.callFrame)) ?? 0) + us);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      if (f.functionName === '(root)') break;
      const kk = key(f);
      if (seen.has(kk)) continue;
      seen.add(kk);
      total.set(kk, (total.get(kk) ?? 0) + us);
    }
  }
  const busyUs = totalUs - idleUs;
  const pct = (us: number) => `${((us / busyUs) * 100).toFixed(1).padStart(5)}%`;
  const ms = (us: number) => `${(us / 1000).toFixed(0).padStart(6)} ms`;
  const list = (m: Map<string, number>, n: number) =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, us]) => `  ${ms(us)} ${pct(us)}  ${k}`);
  const text = [
    `profile ${where(file)}${window ? ' (measured window only)' : ''}: ${(totalUs / 1e6).toFixed(1)} s sampled, ${(busyUs / 1e6).toFixed(1)} s busy (${((busyUs / totalUs) * 100).toFixed(0)}%), % of busy time:`,
    'by package / area (self time):',
    ...list(areas, 15),
    `top ${top} functions by self time:`,
    ...list(self, top),
    `top ${top} functions by total time (self + callees):`,
    ...list(total, top),
  ].join('\n');
  return { totalMs: totalUs / 1000, idleMs: idleUs / 1000, text };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [file, top = '25'] = process.argv.slice(2);
  if (!file || file.startsWith('-')) {
    const help = file === '--help' || file === '-h';
    (help ? console.log : console.error)('Summary of a V8 CPU profile.\n\n  node --import tsx bench/bridge/profile.ts FILE.cpuprofile [TOP]\n\n  TOP  functions listed (default 25)');
    process.exit(help ? 0 : 2);
  }
  console.log(summarize(file, Number(top)).text);
}
