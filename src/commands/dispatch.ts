// Command dispatch (docs/commands.md): a command goes out through the link that
// reaches the device, stays pending under its correlation id with its timeout, and
// is settled by the device's reply on that link. Unknown, late, duplicate and
// malformed replies are counted and ignored; a device that goes offline on the link
// fails the commands sent through it at once.
import { randomId } from "../ids.js";
import { z } from "zod";
import { linkFor, type CommandReply, type DeviceLink } from "../links/device-link.js";

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
  readonly pending: number;
  readonly counters: DispatchCounters;
}

interface Pending {
  device: string;
  link: DeviceLink;
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

/** A reply as the link reported it: decoded, or JSON to decode; null when malformed. */
function decodeReply(reply: Buffer | string | CommandReply): CommandReply | null {
  try {
    const result = replySchema.safeParse(Buffer.isBuffer(reply) || typeof reply === "string" ? JSON.parse(reply.toString()) : reply);
    return result.success ? result.data : null;
  } catch {
    return null;
  }
}

export function createDispatcher(deps: { links: readonly DeviceLink[] }): Dispatcher {
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

  const dispatcher: Dispatcher = {
    counters,
    get pending() {
      return pending.size;
    },
    send(device, command, params, result, timeoutMs) {
      const link = linkFor(deps.links, device);
      if (!link) return Promise.reject(new CommandFailure("offline", `${device} is not connected`));
      const id = randomId();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          settle(id, "expired")?.reject(new CommandFailure("timeout", `no reply from ${device} within ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(id, { device, link, command, result, resolve, reject, timer });
        counters.sent++;
        link.deliver(device, { id, command, params, timeoutMs }).catch((err: Error) => {
          settle(id, "settled")?.reject(new CommandFailure("offline", `could not deliver to ${device}: ${err.message}`));
        });
      });
    },
  };

  function reply(device: string, raw: Buffer | string | CommandReply): void {
    const parsed = decodeReply(raw);
    if (!parsed) {
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
  }

  /** The device left `link`: what was sent through it fails now, not at its timeout. */
  function offline(link: DeviceLink, device: string): void {
    for (const [id, p] of [...pending]) if (p.device === device && p.link === link) settle(id, "settled")?.reject(new CommandFailure("offline", `${device} went offline`));
  }

  for (const link of deps.links) link.listen({ reply, offline: (account) => offline(link, account.name) });
  return dispatcher;
}
