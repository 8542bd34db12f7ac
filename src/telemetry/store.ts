// Where samples end up (docs/telemetry.md). Both stores take spooled samples in order and
// must be idempotent for a replayed sample (same seq → same stored point).
import type { Sample, SpooledSample } from "./sample.js";

export class StoreError extends Error {
  /** True when the samples themselves are bad (InfluxDB 400): retrying will not help. */
  readonly invalidPoints: boolean;
  /** The store's HTTP status, when it answered. */
  readonly status: number | undefined;
  /** The store's own reason (InfluxDB's `error`), when it gave one. */
  readonly reason: string | undefined;

  constructor(message: string, answer: { invalidPoints?: boolean; status?: number; reason?: string } = {}) {
    super(message);
    this.name = "StoreError";
    this.invalidPoints = answer.invalidPoints ?? false;
    this.status = answer.status;
    this.reason = answer.reason;
  }
}

export interface TelemetryStore {
  readonly kind: string;
  write(samples: SpooledSample[]): Promise<void>;
  /** Samples of one device in [from, to] (epoch ms), oldest first. */
  query(device: string, measurement: string, from: number, to: number, limit: number): Promise<Sample[]>;
  close(): Promise<void>;
}
