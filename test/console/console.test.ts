// The operator console (docs/console.md) in real headless Chromium (Debian's
// /usr/bin/chromium driven by playwright-core) against an in-process broker: log in
// over XMPP-over-WebSocket, watch an MQTT device's tile turn online and offline,
// see its telemetry, run set_setpoint from the tile's command menu, use the
// filters, save a screenshot that is not blank, and time MQTT connect → green tile
// for 50 devices. Every wait is bounded; Chromium is killed in teardown.
import t from "tap";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "playwright-core";
import mqtt, { type MqttClient } from "mqtt";
import { startTestBroker, type TestAccount, type TestBroker } from "../helpers/broker.js";
import { ensureConsoleBuilt, launchChromium } from "../helpers/chromium.js";
import { ROOT } from "../helpers/cli.js";

const OUTPUT = join(ROOT, "test/console/.output");
const STEP_MS = 5_000;
const LOAD_DEVICES = 50;

const accounts: TestAccount[] = [
  { name: "op1", role: "operator", password: "console pw" },
  { name: "t1", role: "device", type: "thermostat", password: "t1 pw" },
  { name: "t2", role: "device", type: "thermostat", password: "t2 pw" },
  { name: "door1", role: "device", type: "door-sensor", password: "door1 pw" },
  { name: "meter1", role: "device", type: "power-meter", password: "meter1 pw" },
  ...Array.from({ length: LOAD_DEVICES }, (_, i) => ({ name: `unit-${String(i).padStart(2, "0")}`, role: "device" as const, type: "power-meter", password: "unit pw" })),
];
const password = (name: string) => accounts.find((a) => a.name === name)!.password;

let broker: TestBroker;
let chromium: Awaited<ReturnType<typeof launchChromium>> | undefined;
let page: Page;
const devices: MqttClient[] = [];

t.before(async () => {
  ensureConsoleBuilt();
  broker = await startTestBroker({}, accounts);
  chromium = await launchChromium(STEP_MS);
  page = chromium.page;
});
t.teardown(async () => {
  for (const c of devices) c.end(true);
  await chromium?.close();
  await broker?.close();
});

async function connectDevice(id: string): Promise<MqttClient> {
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { clientId: id, username: id, password: password(id), reconnectPeriod: 0, connectTimeout: STEP_MS });
  devices.push(c);
  return c;
}

const borderColour = (el: Element) => getComputedStyle(el).borderLeftColor;
const tile = (id: string) => page.locator(`.tile[data-id="${id}"]`);

t.test("log in as an operator and see every device as a tile", async (t) => {
  await page.goto(`http://127.0.0.1:${broker.ports.http}/`);
  t.equal(await page.title(), "Switchboard console");
  mkdirSync(OUTPUT, { recursive: true });
  await page.screenshot({ path: join(OUTPUT, "login.png") });
  // A wrong password is refused with a readable message.
  await page.fill("input[name=jid]", "op1@localhost");
  await page.fill("input[name=password]", "wrong");
  await page.click("#login button[type=submit]");
  await page.waitForFunction("document.getElementById('login-error').textContent.length > 0");
  t.match(await page.textContent("#login-error"), /wrong user name or password/);

  await page.fill("input[name=password]", password("op1"));
  await page.click("#login button[type=submit]");
  await tile("t1").waitFor();
  t.equal(await page.getAttribute("body", "data-status"), "online");
  t.equal(await tile("t1").getAttribute("data-state"), "offline");
  t.match(await tile("t1").textContent(), /thermostat/);
  t.match(await tile("t1").textContent(), /never seen/);
  t.equal(await tile("door1").getAttribute("data-type"), "door-sensor");
  t.match(await page.textContent("#counts"), /0 online.*54 offline/);
});

t.test("an MQTT device turns its tile online, its telemetry appears on it", async (t) => {
  const start = Date.now();
  const dev = await connectDevice("t1");
  await page.locator('.tile[data-id="t1"][data-state="online"]').waitFor({ timeout: STEP_MS });
  t.ok(Date.now() - start < STEP_MS, `online after ${Date.now() - start} ms`);
  t.match(await tile("t1").getAttribute("class"), /\bonline\b/);
  t.match(await page.textContent("#counts"), /1 online/);

  await dev.publishAsync("devices/t1/telemetry", JSON.stringify({ temperature: 21.5, humidity: 40 }), { qos: 1 });
  const temperature = tile("t1").locator('.value[data-key="temperature"] dd');
  await temperature.waitFor();
  t.equal(await temperature.textContent(), "21.5 °C");
  t.equal(await tile("t1").locator('.value[data-key="humidity"] dd').textContent(), "40 %");
  t.match(await tile("t1").locator(".tile-ts").textContent(), /updated/);
});

t.test("set_setpoint from the tile's command menu: form from XEP-0050, result in the dialog", async (t) => {
  const dev = devices.find((c) => c.options.clientId === "t1")!;
  const received: unknown[] = [];
  await dev.subscribeAsync("devices/t1/commands/#", { qos: 1 });
  dev.on("message", (topic, payload) => {
    if (!topic.startsWith("devices/t1/commands/")) return;
    const req = JSON.parse(payload.toString()) as { id: string; params: { value: number } };
    received.push({ topic, params: req.params });
    const reply = topic.endsWith("/reboot") ? { id: req.id, ok: false, error: "valve stuck" } : { id: req.id, ok: true, result: { setpoint: req.params.value } };
    void dev.publishAsync("devices/t1/replies", JSON.stringify(reply), { qos: 1 });
  });

  await tile("t1").locator("[data-action=menu]").click();
  const item = tile("t1").locator('[data-action=run][data-node="set_setpoint"]');
  await item.waitFor();
  await page.screenshot({ path: join(OUTPUT, "menu.png"), clip: { x: 0, y: 0, width: 1280, height: 300 } });
  t.ok(await tile("t1").locator('[data-action=run][data-node="reboot"]').count(), "reboot is listed too");
  await item.click();
  const dialog = page.locator("#cmd-dialog");
  await dialog.locator("#field-value").waitFor();
  t.equal(await dialog.locator("#cmd-title").textContent(), await item.getAttribute("data-name"));
  const input = dialog.locator("#field-value");
  t.equal(await input.getAttribute("type"), "number");
  t.equal(await input.getAttribute("min"), "5");
  t.equal(await input.getAttribute("max"), "35");
  t.equal(await input.getAttribute("required"), "");

  // Out of range: the browser's validation keeps the form from being sent.
  await input.fill("99");
  await dialog.locator("#cmd-run").click();
  t.equal(await input.evaluate((el) => (el as HTMLInputElement).validity.rangeOverflow), true);
  t.same(received, [], "nothing was sent");

  await input.fill("22");
  await dialog.locator("#cmd-run").click();
  await page.waitForFunction("document.getElementById('cmd-dialog').dataset.state === 'completed'", undefined, { timeout: STEP_MS });
  t.same(received, [{ topic: "devices/t1/commands/set_setpoint", params: { value: 22 } }]);
  t.match(await dialog.locator("#cmd-result").textContent(), /22/);
  t.equal(await dialog.locator('#cmd-result [data-var="setpoint"] dd').textContent(), "22");
  t.ok(await dialog.locator("#cmd-status.ok").isVisible(), "the note is shown as a success");
  mkdirSync(OUTPUT, { recursive: true });
  await page.screenshot({ path: join(OUTPUT, "command.png") });
  await dialog.locator("#cmd-close").click();
  t.notOk(await dialog.isVisible(), "the dialog closes");

  // A command without parameters runs at once; the device's failure text is shown.
  await tile("t1").locator("[data-action=menu]").click();
  await tile("t1").locator('[data-action=run][data-node="reboot"]').click();
  await page.waitForFunction("document.getElementById('cmd-dialog').dataset.state === 'error'");
  t.equal(await page.getAttribute("#cmd-status", "data-condition"), "undefined-condition");
  t.match(await page.textContent("#cmd-status"), /valve stuck/);
  await dialog.locator("#cmd-close").click();
});

t.test("filters by type, state and id", async (t) => {
  /** Waits (bounded) until exactly these tiles are shown, then checks it. */
  const shows = async (want: string[], what: string) => {
    const ids = () => page.locator(".tile").evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.id ?? "").sort());
    await page.waitForFunction((w) => [...document.querySelectorAll<HTMLElement>(".tile")].map((e) => e.dataset.id).sort().join(" ") === w, want.join(" ")).catch(() => {});
    t.same(await ids(), want, what);
  };
  await page.selectOption("#filter-type", "door-sensor");
  await shows(["door1"], "type door-sensor");
  t.match(await page.textContent("#counts"), /1 shown/);

  await page.selectOption("#filter-type", "");
  await page.selectOption("#filter-state", "online");
  await shows(["t1"], "state online");
  // A device coming online joins the filtered list.
  await connectDevice("t2");
  await shows(["t1", "t2"], "state online, after t2 connected");

  await page.selectOption("#filter-state", "offline");
  await page.fill("#filter-text", "meter");
  await shows(["meter1"], "state offline, id contains 'meter'");

  await page.selectOption("#filter-type", "thermostat");
  await page.fill("#filter-text", "");
  await shows([], "offline thermostats: none");
  t.ok(await page.locator("#empty").isVisible(), "an empty result says so");

  await page.selectOption("#filter-type", "");
  await page.selectOption("#filter-state", "all");
  await tile("door1").waitFor();
});

t.test("a screenshot of the console is not blank", async (t) => {
  // Two more devices reporting, so the picture shows each kind of tile.
  const door = await connectDevice("door1");
  await door.publishAsync("devices/door1/telemetry", JSON.stringify({ open: true, battery: 3.1 }), { qos: 1 });
  const meter = await connectDevice("meter1");
  await meter.publishAsync("devices/meter1/telemetry", JSON.stringify({ voltage: 231.4, current: 4.2, power: 968, energy: 1520.75 }), { qos: 1 });
  await tile("meter1").locator('.value[data-key="energy"]').waitFor();
  t.equal(await tile("door1").locator('.value[data-key="open"] dd').textContent(), "yes");
  mkdirSync(OUTPUT, { recursive: true });
  const file = join(OUTPUT, "console.png");
  const png = await page.screenshot({ path: file });
  t.ok(png.length > 20_000, `PNG is ${png.length} bytes`);
  // Decode it in the page and count distinct colours over a grid of pixels.
  const colours = await page.evaluate(async (src) => {
    const img = new Image();
    img.src = src;
    await img.decode();
    const canvas = document.createElement("canvas");
    canvas.width = img.width;
    canvas.height = img.height;
    const ctx = canvas.getContext("2d")!;
    ctx.drawImage(img, 0, 0);
    const seen = new Set<string>();
    for (let y = 0; y < img.height; y += 7) for (let x = 0; x < img.width; x += 7) seen.add(ctx.getImageData(x, y, 1, 1).data.join(","));
    return seen.size;
  }, `data:image/png;base64,${png.toString("base64")}`);
  t.ok(colours > 20, `${colours} distinct colours sampled`);
  // The online tile is green: its left border is the online colour.
  t.equal(await tile("t1").evaluate(borderColour), "rgb(22, 163, 74)");
  t.equal(await tile("t2").evaluate(borderColour), "rgb(22, 163, 74)");
  t.equal(await tile("unit-00").evaluate(borderColour), "rgb(154, 163, 176)");
});

t.test("a device that disconnects turns its tile offline; commands to it fail with a clear text", async (t) => {
  const dev = devices.find((c) => c.options.clientId === "t1")!;
  await dev.endAsync();
  await page.locator('.tile[data-id="t1"][data-state="offline"]').waitFor({ timeout: STEP_MS });
  t.match(await tile("t1").locator(".tile-seen").textContent(), /last seen (just now|\d+ s ago)/);
  t.equal(await tile("t1").locator('.value[data-key="temperature"] dd').textContent(), "21.5 °C", "the last values stay");

  await tile("t1").locator("[data-action=menu]").click();
  await tile("t1").locator('[data-action=run][data-node="reboot"]').click();
  await page.waitForFunction("document.getElementById('cmd-dialog').dataset.state === 'error'");
  t.equal(await page.getAttribute("#cmd-status", "data-condition"), "recipient-unavailable");
  t.match(await page.textContent("#cmd-status"), /offline/);
  await page.click("#cmd-close");
});

t.test("connect → green tile for 50 devices", async (t) => {
  await page.setViewportSize({ width: 1600, height: 1900 });
  await page.fill("#filter-text", "unit-");
  await page.waitForFunction(`document.querySelectorAll('.tile').length === ${LOAD_DEVICES}`);
  // In the page: the time each tile first shows as online (attribute change or a new tile).
  await page.evaluate(() => {
    const green: Record<string, number> = {};
    (window as unknown as { __green: typeof green }).__green = green;
    const seen = (el: Node) => {
      if (el instanceof HTMLElement && el.dataset.state === "online" && el.dataset.id && !(el.dataset.id in green)) green[el.dataset.id] = Date.now();
    };
    new MutationObserver((records) => {
      for (const r of records) {
        seen(r.target);
        r.addedNodes.forEach(seen);
      }
    }).observe(document.getElementById("grid-inner")!, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-state"] });
  });
  const ids = accounts.filter((a) => a.name.startsWith("unit-")).map((a) => a.name);
  const started: Record<string, number> = {};
  const connacked: Record<string, number> = {};
  await Promise.all(
    ids.map(async (id) => {
      started[id] = Date.now();
      await connectDevice(id);
      connacked[id] = Date.now();
    }),
  );
  await page.waitForFunction(`Object.keys(window.__green).length === ${LOAD_DEVICES}`, undefined, { timeout: 10_000 });
  const green = (await page.evaluate("window.__green")) as Record<string, number>;
  const stats = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    const q = (p: number) => s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
    return `p50 ${q(50)} ms, p99 ${q(99)} ms, max ${s[s.length - 1]} ms`;
  };
  const fromConnect = ids.map((id) => green[id]! - started[id]!);
  const fromConnack = ids.map((id) => green[id]! - connacked[id]!);
  t.comment(`connect → green, ${LOAD_DEVICES} devices connecting at once: ${stats(fromConnect)}`);
  t.comment(`CONNACK → green: ${stats(fromConnack)}`);
  writeFileSync(join(OUTPUT, "timings.json"), JSON.stringify({ fromConnect, fromConnack }, null, 1));
  t.ok(Math.max(...fromConnect) < STEP_MS, "every tile turned green within 5 s");
  await page.screenshot({ path: join(OUTPUT, "load.png") });
  for (const c of devices.splice(0)) await c.endAsync();
  await page.waitForFunction(`document.querySelectorAll('.tile[data-state="online"]').length === 0`, undefined, { timeout: 10_000 });
  t.pass("all went offline again");
});
