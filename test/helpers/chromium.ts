// Debian's headless Chromium driven by playwright-core, for the operator console's
// tests: a fresh profile per run, and a close that kills Chromium if it hangs.
import { existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync, statSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Page } from "playwright-core";
import { ROOT } from "./cli.js";

const CHROMIUM = "/usr/bin/chromium";

/** Builds dist/console when it is missing or older than any source of the console. */
export function ensureConsoleBuilt(): void {
  const src = join(ROOT, "src/console");
  const built = join(ROOT, "dist/console/index.html");
  const newest = Math.max(...readdirSync(src).map((f) => statSync(join(src, f)).mtimeMs));
  if (existsSync(built) && statSync(built).mtimeMs >= newest && existsSync(join(ROOT, "dist/console/app.js"))) return;
  execFileSync(process.execPath, [join(src, "build.mjs")], { cwd: ROOT, stdio: "pipe", timeout: 60_000 });
}

/** Headless Chromium with an empty profile (its --user-data-dir) of its own; one page whose waits are bounded by `stepMs`. */
export async function launchChromium(stepMs: number): Promise<{ page: Page; close(): Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), "sb-chromium-"));
  /** The pid of the Chromium that holds `profile` (its SingletonLock points at "<host>-<pid>"). */
  const pid = (): number | null => {
    try {
      const n = Number(readlinkSync(join(profile, "SingletonLock")).split("-").pop());
      return Number.isInteger(n) && n > 0 ? n : null;
    } catch {
      return null;
    }
  };
  const context = await chromium
    .launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      timeout: 30_000,
      viewport: { width: 1280, height: 820 },
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
    })
    .catch((err: unknown) => {
      rmSync(profile, { recursive: true, force: true });
      throw err;
    });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(stepMs);
  return {
    page,
    async close() {
      const running = pid();
      const closed = await Promise.race([context.close().then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 5_000))]);
      if (!closed && running) {
        try {
          process.kill(running, "SIGKILL");
        } catch {
          /* already gone */
        }
      }
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
