// The peer pipeline's writer: what a user would put between Mosquitto and
// InfluxDB. mqtt.js subscribes to devices/+/telemetry at QoS 1, each sample
// becomes a point (tag device, fields temperature and humidity, time from
// its `ts`), and the `influx` package writes them in batches of batchSize or
// every flushMs, whichever comes first, without waiting for one write to end
// before the next starts. No validation, no spool: this is the minimal
// version, the one Switchboard has to beat.
//
// Runs as a process of its own, driven over IPC (../common/ipc.ts). It also
// measures publish-to-landed latency exactly: the send time rides in each
// sample (see ../common/mqtt-loadgen.ts), the landing time is when InfluxDB
// confirmed the batch.
import mqtt from 'mqtt';
import { InfluxDB, type IPoint } from 'influx';
import { serve } from '../common/ipc.js';
import { latencySummary } from '../common/util.js';

let client: mqtt.MqttClient | null = null;
let written = 0, failed = 0, firstError = '';
let window = { from: Infinity, to: -Infinity };
let lat: number[] = [];

async function start(r: { mqttPort: number; influxUrl: string; database: string; batchSize: number; flushMs: number }): Promise<null> {
  const url = new URL(r.influxUrl);
  const influx = new InfluxDB({ host: url.hostname, port: Number(url.port), database: r.database });
  await influx.createDatabase(r.database);
  let batch: IPoint[] = [];
  let sent: number[] = [];
  let seq = 0;
  const flush = () => {
    if (batch.length === 0) return;
    const points = batch, sentAt = sent;
    batch = [];
    sent = [];
    influx.writePoints(points, { precision: 'n' }).then(() => {
      const now = performance.timeOrigin + performance.now();
      written += points.length;
      for (const s of sentAt) if (s >= window.from && s < window.to) lat.push(now - s);
    }, (e: Error) => {
      failed += points.length;
      firstError ||= e.message;
    });
  };
  setInterval(flush, r.flushMs);
  client = mqtt.connect(`mqtt://127.0.0.1:${r.mqttPort}`, { clientId: 'peer-writer', clean: true, reconnectPeriod: 0 });
  await new Promise<void>((resolve, reject) => {
    client!.once('connect', () => resolve());
    client!.once('error', reject);
  });
  client.on('message', (topic, payload) => {
    const device = topic.split('/')[1]!;
    const s = JSON.parse(payload.toString()) as { temperature: number; humidity: number; ts: number };
    // Nanosecond time: the sample's milliseconds plus a sequence number, so
    // two samples of one device in the same millisecond stay two points (as
    // Switchboard does, src/telemetry/sample.ts).
    batch.push({ measurement: 'thermostat', tags: { device }, fields: { temperature: s.temperature, humidity: s.humidity },
      timestamp: `${s.ts}${String(seq++ % 1_000_000).padStart(6, '0')}` });
    sent.push(s.ts + (s.humidity - 40));
    if (batch.length >= r.batchSize) flush();
  });
  await client.subscribeAsync('devices/+/telemetry', { qos: 1 });
  return null;
}

/** Latency is kept for samples sent in [from, to). */
function setWindow(r: { from: number; to: number }): null {
  window = { from: r.from, to: r.to };
  lat = [];
  return null;
}

function stats(): { written: number; failed: number; firstError: string; latency: ReturnType<typeof latencySummary> } {
  return { written, failed, firstError, latency: latencySummary(lat) };
}

async function stop(): Promise<null> {
  await client?.endAsync(true);
  client = null;
  return null;
}

serve({ start, setWindow, stats, stop });
