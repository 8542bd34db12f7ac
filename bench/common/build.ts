// This checkout's Switchboard as the benches run it: dist/ rebuilt when a source
// is newer, and the commit it was built from, for the report.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, provisionSwitchboard, type SwitchboardAccounts } from './switchboard.js';
import { log } from './util.js';

/** Newest modification time of the TypeScript sources that dist/ is built from. */
function newestSource(): number {
  let newest = 0;
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(ts|mts|json)$/.test(e.name)) newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  for (const d of ['src', 'bridges', 'devices', 'schemas', 'types']) if (existsSync(join(REPO, d))) walk(join(REPO, d));
  return newest;
}

/**
 * Builds dist/ (npm run build) when a source is newer than it, unless told
 * not to; fails if nothing could be emitted.
 */
export function buildSwitchboard(skip: boolean): string {
  const index = join(REPO, 'dist', 'src', 'index.js');
  if (skip) {
    if (!existsSync(index)) throw new Error('dist/ is missing: run npm run build');
    return 'not rebuilt (--no-build)';
  }
  if (existsSync(index) && statSync(index).mtimeMs > newestSource()) return 'dist/ is up to date';
  const t = Date.now();
  try {
    execFileSync('npm', ['run', '--silent', 'build'], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000 });
  } catch (e) {
    const out = String((e as { stdout?: Buffer }).stdout ?? '') + String((e as { stderr?: Buffer }).stderr ?? '');
    // tsc emits in spite of type errors (no noEmitOnError): other developers'
    // work in progress elsewhere in src/ need not stop the bench. It goes on
    // with what was emitted, and says so.
    const emitted = existsSync(index) && statSync(index).mtimeMs >= t - 1_000;
    if (!emitted) throw new Error(`npm run build failed:\n${out.slice(0, 2000)}`);
    const first = out.split('\n').filter((l) => /error TS/.test(l));
    return `built in ${((Date.now() - t) / 1000).toFixed(1)} s WITH ${first.length} TYPE ERROR(S) (emitted anyway), first: ${first[0] ?? '?'}`;
  }
  return `built in ${((Date.now() - t) / 1000).toFixed(1)} s`;
}

/** The commit and whether the worktree has changes, for the report. */
export function gitDescribe(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO }).toString().trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'bridges', 'devices', 'schemas'], { cwd: REPO }).toString().trim();
    return dirty ? `${head} + uncommitted changes in src/bridges` : head;
  } catch {
    return '?';
  }
}

/**
 * When any of `names` is Switchboard (`switchboard…`), builds this checkout (unless
 * `noBuild`) and provisions `accounts` into `template`; returns how long provisioning
 * took, ms. A failure becomes the error of every Switchboard target.
 */
export function prepareSwitchboard(o: { names: string[]; noBuild: boolean; template: string; accounts: SwitchboardAccounts; errors: Map<string, string> }): number | undefined {
  const targets = o.names.filter((n) => n.startsWith('switchboard'));
  if (!targets.length) return undefined;
  try {
    log(`switchboard: ${buildSwitchboard(o.noBuild)}`);
    return provisionSwitchboard(o.template, o.accounts);
  } catch (e) {
    for (const n of targets) o.errors.set(n, (e as Error).message);
    return undefined;
  }
}
