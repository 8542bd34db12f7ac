// Every executed command, whatever path it came by (XEP-0050, XEP-0325, bridges): one
// JSON log line with who, what and how it ended, counted per outcome with its latency
// (docs/commands.md).
import type { Logger } from "../log.js";
import { byLabel, type Metrics } from "../metrics.js";
import type { CommandOutcome } from "./dispatch.js";

export interface AuditEntry {
  who: string;
  device: string;
  command: string;
  params: unknown;
  outcome: CommandOutcome;
  latencyMs: number;
  error?: string;
}

export interface CommandAudit {
  (entry: AuditEntry): void;
  /** Commands by outcome. */
  readonly outcomes: ReadonlyMap<string, number>;
}

export function commandAudit(deps: { log: Logger; metrics: Metrics }): CommandAudit {
  const outcomes = new Map<string, number>();
  deps.metrics.counter("switchboard_commands_total", "Commands by outcome", () => byLabel(outcomes), ["outcome"]);
  const seconds = deps.metrics.histogram("switchboard_command_seconds", "Command round trip through the broker", [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30], ["outcome"]);
  const audit = (entry: AuditEntry) => {
    outcomes.set(entry.outcome, (outcomes.get(entry.outcome) ?? 0) + 1);
    seconds(entry.latencyMs / 1000, entry.outcome);
    deps.log.info({ ...entry, latencyMs: Math.round(entry.latencyMs * 100) / 100 }, "command");
  };
  return Object.assign(audit, { outcomes });
}
