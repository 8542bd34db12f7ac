// The connection side of the MQTT load generator (mqtt-loadgen.ts): connect storms
// for the connect rate, and idle devices kept connected for memory per device.
import { performance } from 'node:perf_hooks';
import { MqttClient, connectOnce, type Endpoint } from './mqtt.js';
import { pool, sleepUntil } from './timing.js';

export interface Cred { clientId: string; username?: string; password?: string }
export interface ConnectResult { count: number; errors: number; seconds: number; firstError?: string }

/** `target()`: the broker of the current phase. */
export function connectLoad(target: () => Endpoint) {
  let idle: MqttClient[] = [];

  /**
   * New authenticated connections: CONNECT → CONNACK → DISCONNECT, `concurrency`
   * at a time, until the deadline, over distinct devices in turn. Those under
   * way at the deadline are finished and counted; the rate uses the time the
   * last one ended.
   */
  async function connects(r: { creds: Cred[]; concurrency: number; startAt?: number; durationMs: number }): Promise<ConnectResult> {
    if (r.startAt) await sleepUntil(r.startAt);
    const start = performance.now();
    const deadline = Date.now() + r.durationMs;
    let next = 0, count = 0, errors = 0, last = start;
    let firstError: string | undefined;
    await Promise.all(Array.from({ length: r.concurrency }, async () => {
      while (Date.now() < deadline) {
        const cred = r.creds[next++ % r.creds.length]!;
        try {
          await connectOnce({ ...target(), ...cred, keepalive: 60, timeoutMs: 30_000 });
          count++;
          last = performance.now();
        } catch (e) {
          errors++;
          firstError ??= String(e);
          if (errors > 100) break;
        }
      }
    }));
    return { count, errors, seconds: (last - start) / 1000, firstError };
  }

  /** Connects devices and keeps them connected (pinging at half the keepalive). */
  async function connectIdle(r: { creds: Cred[]; concurrency: number }): Promise<ConnectResult> {
    const start = performance.now();
    let errors = 0;
    let firstError: string | undefined;
    await pool(r.creds, r.concurrency, async (cred) => {
      try {
        idle.push(await MqttClient.connect({ ...target(), ...cred, keepalive: 60, timeoutMs: 60_000 }));
      } catch (e) {
        errors++;
        firstError ??= String(e);
      }
    });
    return { count: idle.length, errors, seconds: (performance.now() - start) / 1000, firstError };
  }

  async function dropIdle(): Promise<null> {
    const all = idle;
    idle = [];
    for (const c of all) c.destroy();
    return null;
  }

  return { connects, connectIdle, dropIdle };
}
