// MQTT command dispatch (issue 5 §3): publish `{"id","params"}` on
// devices/<id>/commands/<command> at QoS 1, keep the request pending under its
// correlation id with its timeout, and settle it with the device's reply on
// devices/<id>/replies. Unknown, late, duplicate and malformed replies are counted
// and ignored; a device that goes offline fails its pending commands at once.
import { randomId } from "../ids.js";
import { z } from "zod";

export type CommandOutcome = "completed" | "bad-params" | "offline" | "timeout" | "device-error" | "bad-result" | "forbidden" | "not-found" | "canceled";

export class CommandFailure extends Error {
  constructor(
    readonly outcome: Exclude<CommandOutcome, "completed">,
    message: string,
  ) {
    super(message);
  }
}

const replySchema = z.union([
  z.strictObject({ id: z.string().min(1), ok: z.literal(true), result: z.record(z.string(), z.unknown()).optional() }),
  z.strictObject({ id: z.string().min(1), ok: z.literal(false), error: z.string() }),
]);

export interface DispatchCounters {
  sent: number;
  unknownReplies: number;
  lateReplies: number;
  duplicateReplies: number;
  malformedReplies: number;
}

export interface Dispatcher {
  /** Resolves with the validated result; rejects with CommandFailure. */
  send(device: string, command: string, params: Record<string, unknown>, result: z.ZodObject, timeoutMs: number): Promise<Record<string, unknown>>;
  /** A message the device published on its replies topic. */
  reply(device: string, payload: Buffer | string): void;
  /** The device went offline: its pending commands fail now, not at their timeout. */
  offline(device: string): void;
  readonly pending: number;
  readonly counters: DispatchCounters;
}

interface Pending {
  device: string;
  command: string;
  result: z.ZodObject;
  resolve: (value: Record<string, unknown>) => void;
  reject: (error: CommandFailure) => void;
  timer: NodeJS.Timeout;
}

/** Remembers recently settled ids, to tell a late or duplicate reply from an unknown one. */
function recentIds(capacity: number) {
  const ids = new Map<string, "settled" | "expired">();
  return {
    add(id: string, how: "settled" | "expired") {
      ids.set(id, how);
      if (ids.size > capacity) ids.delete(ids.keys().next().value!);
    },
    get: (id: string) => ids.get(id),
  };
}

export function createDispatcher(deps: {
  /** Sends `{"id","params"}` to the device: the embedded broker's commands topic, or a bridge's. */
  deliver: (device: string, command: string, payload: { id: string; params: Record<string, unknown> }) => Promise<void>;
  isOnline: (device: string) => boolean;
}): Dispatcher {
  const pending = new Map<string, Pending>();
  const recent = recentIds(10_000);
  const counters: DispatchCounters = { sent: 0, unknownReplies: 0, lateReplies: 0, duplicateReplies: 0, malformedReplies: 0 };

  function settle(id: string, how: "settled" | "expired"): Pending | undefined {
    const p = pending.get(id);
    if (!p) return undefined;
    pending.delete(id);
    clearTimeout(p.timer);
    recent.add(id, how);
    return p;
  }

  return {
    counters,
    get pending() {
      return pending.size;
    },
    send(device, command, params, result, timeoutMs) {
      if (!deps.isOnline(device)) return Promise.reject(new CommandFailure("offline", `${device} is not connected`));
      const id = randomId();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          settle(id, "expired")?.reject(new CommandFailure("timeout", `no reply from ${device} within ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(id, { device, command, result, resolve, reject, timer });
        counters.sent++;
        deps.deliver(device, command, { id, params }).catch((err: Error) => {
          settle(id, "settled")?.reject(new CommandFailure("offline", `could not publish to ${device}: ${err.message}`));
        });
      });
    },
    reply(device, payload) {
      let parsed: z.infer<typeof replySchema>;
      try {
        const result = replySchema.safeParse(JSON.parse(payload.toString()));
        if (!result.success) throw result.error;
        parsed = result.data;
      } catch {
        counters.malformedReplies++;
        return;
      }
      const p = pending.get(parsed.id);
      // A reply only settles a command sent to the device that replies.
      if (!p || p.device !== device) {
        const seen = p ? undefined : recent.get(parsed.id);
        if (seen === "expired") counters.lateReplies++;
        else if (seen === "settled") counters.duplicateReplies++;
        else counters.unknownReplies++;
        return;
      }
      settle(parsed.id, "settled");
      if (!parsed.ok) return p.reject(new CommandFailure("device-error", parsed.error || "the device reported an error"));
      const checked = p.result.safeParse(parsed.result ?? {});
      if (!checked.success) {
        const issue = checked.error.issues[0]!;
        const path = issue.code === "unrecognized_keys" ? issue.keys.join(", ") : issue.path.join(".") || "result";
        return p.reject(new CommandFailure("bad-result", `the device's result is invalid: ${path}: ${issue.code === "unrecognized_keys" ? "unknown field" : issue.message}`));
      }
      p.resolve(checked.data as Record<string, unknown>);
    },
    offline(device) {
      for (const [id, p] of [...pending]) if (p.device === device) settle(id, "settled")?.reject(new CommandFailure("offline", `${device} went offline`));
    },
  };
}
