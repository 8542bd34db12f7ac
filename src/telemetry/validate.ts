// parse → validate → stamp: the edge of the ingest pipeline. Every rejection has a
// short reason (counted by it) and the issues naming each path and rule.
import type { z } from "zod";
import type { DeviceType } from "../../devices/index.js";
import type { FieldValue, Sample, SpooledSample } from "./sample.js";
import { isMissing } from "../zod-issues.js";

export interface Issue {
  path: string;
  message: string;
}

export type Rejection = { reason: string; issues: Issue[] };
export type Validated = { ok: true; sample: Sample } | ({ ok: false } & Rejection);

// Line protocol cannot carry a line break in a tag or string field (InfluxDB 1.x).
const LINE_BREAK = /[\r\n]/;

export function parsePayload(payload: Buffer | string | unknown): unknown | Rejection {
  if (typeof payload !== "string" && !Buffer.isBuffer(payload)) return payload;
  try {
    return JSON.parse(payload.toString());
  } catch {
    return { reason: "payload is not JSON", issues: [] } satisfies Rejection;
  }
}

const NO_TAGS: Record<string, string> = Object.freeze({}) as Record<string, string>;

const isRejection = (value: unknown): value is Rejection =>
  typeof value === "object" && value !== null && "reason" in value && "issues" in value && Object.keys(value).length === 2;

function describe(issue: z.core.$ZodIssue, input: unknown): Issue {
  const path = issue.path.map(String).join(".") || "(root)";
  if (issue.code === "unrecognized_keys") return { path: issue.keys.join(", "), message: `unknown key${issue.keys.length > 1 ? "s" : ""}` };
  if (isMissing(issue, input)) return { path, message: "required" };
  return { path, message: issue.message.replace(/^Invalid input: /, "") };
}

export function validateSample(type: DeviceType, device: string, payload: Buffer | string | unknown, receivedAt: number): Validated {
  const parsed = parsePayload(payload);
  if (isRejection(parsed)) return { ok: false, ...parsed };
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return { ok: false, reason: "telemetry must be an object", issues: [] };
  const result = type.telemetry.safeParse(parsed);
  if (!result.success) {
    const issues = result.error.issues.map((issue) => describe(issue, parsed));
    // A path with two issues (a ts too large for an integer, and so also in the future) is named once.
    return { ok: false, reason: `invalid ${[...new Set(issues.map((i) => i.path))].join(", ")}`, issues };
  }
  const data = result.data as Record<string, unknown>;
  // A type without tags shares one empty, frozen object: one object less per sample
  // kept in memory until the store has it.
  const tags: Record<string, string> = type.tags.length === 0 ? NO_TAGS : {};
  const fields: Record<string, FieldValue> = {};
  let fieldCount = 0;
  // Own keys only (a for…in would also walk anything enumerable on Object.prototype);
  // one keys array per sample, not an entries array per key nor a rest copy.
  for (const key of Object.keys(data)) {
    const value = data[key];
    if (key === "ts" || value === undefined || value === null) continue;
    if (typeof value === "string" && LINE_BREAK.test(value)) return { ok: false, reason: `invalid ${key}`, issues: [{ path: key, message: "must not contain a line break" }] };
    if (type.tags.includes(key)) tags[key] = String(value);
    else if (typeof value === "number" || typeof value === "boolean" || typeof value === "string") {
      fields[key] = value;
      fieldCount++;
    } else return { ok: false, reason: `invalid ${key}`, issues: [{ path: key, message: "must be a number, boolean or string" }] };
  }
  if (fieldCount === 0) return { ok: false, reason: "no measurement", issues: [{ path: "(root)", message: "a sample needs at least one field" }] };
  const ts = data.ts;
  const time = ts === undefined ? receivedAt : typeof ts === "number" ? ts : Date.parse(ts as string);
  // Every property the pipeline adds later is here from the start (the spool sets
  // `seq` in place once the sample is committed): one object shape per sample.
  const sample: SpooledSample = { device, type: type.name, measurement: type.measurement, time, tags, fields, pointNs: undefined, tagsJson: undefined, fieldsJson: undefined, seq: 0 };
  return { ok: true, sample };
}
