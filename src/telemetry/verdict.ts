// The ingest's verdict on one sample, as links and protocol edges receive it.
import type { SpooledSample } from "./sample.js";
import type { Issue } from "./validate.js";

export type IngestResult =
  | { ok: true; sample: SpooledSample }
  | { ok: false; reason: string; issues: Issue[]; /** The broker, not the sample, is the problem (spool full). */ overloaded?: boolean };

/** The ingest's answer: a result, or null and the error that stopped it (not the sample's fault). */
export type Ingested = (result: IngestResult | null, err?: unknown) => void;
