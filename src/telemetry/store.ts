// Where samples end up (CONTRACT §6). Both stores take spooled samples in order and
// must be idempotent for a replayed sample (same seq → same stored point).
import type { Sample, SpooledSample } from "./sample.js";

export class StoreError extends Error {
  constructor(
    message: string,
    /** True when the samples themselves are bad (InfluxDB 400): retrying will not help. */
    readonly invalidPoints = false,
  ) {
    super(message);
  }
}

export interface TelemetryStore {
  readonly kind: string;
  write(samples: SpooledSample[]): Promise<void>;
  /** Samples of one device in [from, to] (epoch ms), oldest first. */
  query(device: string, measurement: string, from: number, to: number, limit: number): Promise<Sample[]>;
  close(): Promise<void>;
}
