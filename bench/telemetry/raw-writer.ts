// The limit of the store: line protocol POSTed straight to InfluxDB's
// /write in batches of batchSize points (the same thermostat points, 50
// devices, nanosecond times), `concurrency` requests in flight over
// keep-alive connections. Runs as a process of its own, driven over IPC.
import http from 'node:http';
import { serve } from '../common/ipc.js';
import { sleepUntil } from '../common/timing.js';
import { latencySummary } from '../common/util.js';

function post(agent: http.Agent, url: URL, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ agent, host: url.hostname, port: url.port, method: 'POST', path: `${url.pathname}${url.search}`,
      headers: { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function run(r: { url: string; database: string; batchSize: number; concurrency: number; devices: number; startAt: number; from: number; to: number }) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: r.concurrency });
  await fetch(`${r.url}/query`, { method: 'POST', body: new URLSearchParams({ q: `CREATE DATABASE ${r.database}` }) });
  const url = new URL(`${r.url}/write?db=${r.database}&precision=n`);
  let seq = 0, points = 0, pointsInWindow = 0, errors = 0;
  let firstError = '';
  const lat: number[] = [];
  const batch = (): string => {
    const ms = Date.now();
    let s = '';
    for (let i = 0; i < r.batchSize; i++, seq++) {
      s += `thermostat,device=p${seq % r.devices} temperature=21.5,humidity=40.5 ${ms}${String(seq % 1_000_000).padStart(6, '0')}\n`;
    }
    return s;
  };
  await sleepUntil(r.startAt);
  await Promise.all(Array.from({ length: r.concurrency }, async () => {
    while (Date.now() < r.to) {
      const body = batch();
      const t0 = performance.now();
      try {
        const status = await post(agent, url, body);
        if (status !== 204) throw new Error(`HTTP ${status}`);
        const now = Date.now();
        points += r.batchSize;
        if (now >= r.from && now < r.to) { pointsInWindow += r.batchSize; lat.push(performance.now() - t0); }
      } catch (e) {
        errors++;
        firstError ||= (e as Error).message;
        if (errors > 20) break;
      }
    }
  }));
  agent.destroy();
  return { points, pointsInWindow, seconds: (r.to - r.from) / 1000, errors, firstError, postMs: latencySummary(lat) };
}

serve({ run });
