// The operator console in headless Chromium: logging in, waiting for the whole
// fleet, and the instrumentation that records when each tile turns green,
// animation-frame gaps and long tasks; then each probe's latency from those records.
import { chromium, type BrowserContext, type Page } from "playwright-core";

/**
 * In the page: when each tile turns green, animation-frame gaps, long tasks. A string,
 * not a function: tsx would wrap the function's inner closures in a helper the page lacks.
 */
const INSTRUMENT = `(() => {
  const green = {}, frames = [], long = [];
  Object.assign(window, { __green: green, __frames: frames, __long: long });
  const seen = (node) => {
    if (!(node instanceof HTMLElement) || node.dataset.state !== "online" || !node.dataset.id) return;
    (green[node.dataset.id] ??= []).push(Date.now());
  };
  new MutationObserver((records) => {
    for (const r of records) { seen(r.target); r.addedNodes.forEach(seen); }
  }).observe(document.getElementById("grid-inner"), { subtree: true, childList: true, attributes: true, attributeFilter: ["data-state"] });
  let last = performance.now();
  const frame = (now) => { frames.push(now - last); last = now; requestAnimationFrame(frame); };
  requestAnimationFrame(frame);
  new PerformanceObserver((list) => { for (const e of list.getEntries()) long.push(e.duration); }).observe({ type: "longtask" });
})()`;

export interface PageRecords {
  green: Record<string, number[]>;
  frames: number[];
  long: number[];
}

/** Headless Chromium with its profile in `profile`, and its page. */
export async function launch(profile: string): Promise<{ context: BrowserContext; page: Page }> {
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    timeout: 30_000,
    viewport: { width: 1600, height: 1000 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  const page: Page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(60_000);
  return { context, page };
}

/** Logs the operator in and waits until the counts show the fleet; returns how long that took, ms. Then instruments the page. */
export async function loginAndInstrument(page: Page, o: { httpPort: number; password: string; devices: number; online: number }): Promise<number> {
  await page.goto(`http://127.0.0.1:${o.httpPort}/`);
  await page.fill("input[name=jid]", "op@localhost");
  await page.fill("input[name=password]", o.password);
  const loginAt = Date.now();
  await page.click("#login button[type=submit]");
  await page.waitForFunction(([total, up]) => document.querySelector("#counts")?.textContent?.includes(`${up} online${total - up} offline`), [o.devices, o.online] as const, { polling: 50 });
  const loadMs = Date.now() - loginAt;
  await page.evaluate(INSTRUMENT);
  return loadMs;
}

export async function records(page: Page): Promise<PageRecords> {
  return (await page.evaluate(() => {
    const w = window as unknown as { __green: Record<string, number[]>; __frames: number[]; __long: number[] };
    return { green: w.__green, frames: w.__frames, long: w.__long };
  })) as PageRecords;
}

export interface Probe {
  id: string;
  start: number;
  connack?: number;
}

/** Each probe's latency: the first green of its id at or after its connect started. */
export function probeLatencies(probes: Probe[], green: Record<string, number[]>) {
  const used: Record<string, number> = {};
  const fromConnect: number[] = [];
  const fromConnack: number[] = [];
  const toConnack: number[] = [];
  let missed = 0;
  for (const p of probes) {
    const times = green[p.id] ?? [];
    const k = times.findIndex((t, i) => t >= p.start && i >= (used[p.id] ?? 0));
    if (k < 0 || !p.connack) {
      missed++;
      continue;
    }
    used[p.id] = k + 1;
    fromConnect.push(times[k]! - p.start);
    fromConnack.push(times[k]! - p.connack);
    toConnack.push(p.connack - p.start);
  }
  return { fromConnect, fromConnack, toConnack, missed };
}
