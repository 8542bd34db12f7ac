// /readyz (docs/operations.md): ready while every registered check is. Each part adds
// its own check (the spool's room, a required bridge's link); their details are
// merged into the answer, lists under the same key joined.
export interface Check {
  ok: boolean;
  /** Why not ready. */
  reason?: string;
  details?: Record<string, unknown>;
}

export interface Readiness {
  add(check: () => Check): void;
  /** The answer /readyz gives. */
  state(): { ok: boolean; reason?: string; [detail: string]: unknown };
}

export function createReadiness(): Readiness {
  const checks: Array<() => Check> = [];
  return {
    add: (check) => void checks.push(check),
    state() {
      const details: Record<string, unknown> = {};
      const reasons: string[] = [];
      for (const check of checks) {
        const result = check();
        if (!result.ok && result.reason) reasons.push(result.reason);
        for (const [key, value] of Object.entries(result.details ?? {})) {
          const had = details[key];
          details[key] = Array.isArray(had) && Array.isArray(value) ? [...had, ...value] : value;
        }
      }
      return reasons.length ? { ok: false, reason: reasons.join("; "), ...details } : { ok: true, ...details };
    },
  };
}

/** Ready while the store keeps up, or while the spool still has room for its backlog. */
export function spoolReadiness(deps: { spool: { depth: number; bytes: number }; drainer: { state: { failing: boolean; lastError: string | null } }; maxBytes: number }): () => Check {
  return () => {
    const { spool, drainer } = deps;
    const full = spool.bytes >= deps.maxBytes * 0.95;
    return {
      ok: !full,
      reason: full ? "telemetry spool nearly full" : undefined,
      details: { spooled: spool.depth, spoolBytes: spool.bytes, storeFailing: drainer.state.failing, lastError: drainer.state.lastError },
    };
  };
}
