// The beginning, run loop and ending the MQTT-side benches share: a work directory
// and a first line saying what runs where; targets interleaved (A B C, A B C, …) so
// that a drift of the machine spreads over all of them, a run disturbed by other
// processes repeated once when time allows; and the results printed, optionally
// saved as JSON, and the work directory kept only on errors.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gitDescribe } from './build.js';
import { type Budget, fmt, load1, log, machine, waitForeignQuiet } from './util.js';

/**
 * Makes the work dir (switchboard-<bench>-bench-… in the temp dir) and logs the
 * machine, its load, the runs, the servers' `versions` and the commit; returns it
 * with empty results and errors for `names`.
 */
export function beginBench<R>(o: { bench: string; names: string[]; runs: number; versions: string }): { work: string; results: Map<string, R[]>; errors: Map<string, string> } {
  const work = mkdtempSync(join(tmpdir(), `switchboard-${o.bench}-bench-`));
  log(`work dir ${work}; ${machine()}; load ${fmt(load1(), 2)}; ${o.runs} run(s); ${o.versions}; switchboard ${gitDescribe()}`);
  return { work, results: new Map(o.names.map((n) => [n, []])), errors: new Map() };
}

/** A run using more than this share of a core elsewhere on the machine is repeated once. */
const DISTURBED_PCT = 25;

export interface Interleaved<R extends { foreignCpuPct: number }> {
  names: string[];
  runs: number;
  budget: Budget;
  /** How long to wait for the machine to go quiet before each run. */
  quietWaitMs: number;
  /** The time one run needs; run 1 may need `firstRunExtraMs` more. */
  perRunMs: number;
  firstRunExtraMs?: number;
  /** Time kept free for what follows the runs (e.g. a memory run). */
  reserveMs?: number;
  results: Map<string, R[]>;
  errors: Map<string, string>;
  run(name: string, run: number, attempt: number): Promise<R>;
}

export async function runInterleaved<R extends { foreignCpuPct: number }>(o: Interleaved<R>): Promise<void> {
  const reserve = o.reserveMs ?? 0;
  const live = () => o.names.filter((n) => !o.errors.has(n)).length;
  for (let run = 1; run <= o.runs; run++) {
    for (const [i, name] of o.names.entries()) {
      if (o.errors.has(name)) continue;
      // Runs still planned after this one, which a repeat must not crowd out.
      const after = (o.runs - run) * live() + o.names.slice(i + 1).filter((n) => !o.errors.has(n)).length;
      for (let attempt = 1; attempt <= 2; attempt++) {
        if (!o.budget.fits(o.perRunMs + (run === 1 ? (o.firstRunExtraMs ?? 0) : 0) + reserve)) {
          log(`${name}: run ${run} skipped: time budget`);
          break;
        }
        const others = await waitForeignQuiet(o.quietWaitMs);
        log(`--- run ${run}/${o.runs}: ${name} (load ${fmt(load1(), 2)}, others ${fmt(others)}% of a core)`);
        try {
          const r = await o.run(name, run, attempt);
          if (r.foreignCpuPct > DISTURBED_PCT && attempt === 1 && o.budget.fits((after + 1) * o.perRunMs + reserve)) {
            log(`WARNING: other processes used ${fmt(r.foreignCpuPct)}% of a core during this run; repeating it`);
            continue;
          }
          if (r.foreignCpuPct > DISTURBED_PCT) log(`WARNING: other processes used ${fmt(r.foreignCpuPct)}% of a core during this run`);
          o.results.get(name)!.push(r);
        } catch (e) {
          o.errors.set(name, `run ${run}: ${(e as Error).message}`);
          log(`${name}: ERROR ${(e as Error).message}`);
        }
        break;
      }
    }
  }
}

/** Prints the report, writes the JSON if asked, removes the work dir unless kept; returns the exit code. */
export function finishBench(o: {
  report: string;
  budget: Budget;
  json?: string;
  params: unknown;
  results: Map<string, unknown[]>;
  extra?: Record<string, unknown>;
  errors: Map<string, string>;
  dir: string;
  keep: boolean;
}): number {
  console.log(o.report);
  log(`total ${fmt(o.budget.elapsedMs / 60_000, 1)} min`);
  if (o.json) {
    writeFileSync(o.json, JSON.stringify({ params: o.params, date: new Date().toISOString(), machine: machine(), switchboard: gitDescribe(),
      results: Object.fromEntries(o.results), ...o.extra, errors: Object.fromEntries(o.errors) }, null, 2));
  }
  if (o.keep || o.errors.size) log(`kept ${o.dir} (configs and logs)`);
  else rmSync(o.dir, { recursive: true, force: true });
  return o.errors.size ? 1 : 0;
}
