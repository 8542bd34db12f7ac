// An account removed from the registry (by the CLI, while the broker runs) loses its
// sessions at once, as ejabberd and Prosody do on user deletion.
import { StreamError } from "../errors.js";
import type { Router } from "../router.js";
import type { Registry } from "../../registry/registry.js";

export function accountsModule(deps: { router: Router; registry: Registry }): void {
  const { router, registry } = deps;
  registry.onChange((change) => {
    if (change.op !== "remove") return;
    for (const session of [...router.sessions.ofAccount(`${change.account.name}@${router.domain}`)])
      session.close(new StreamError("not-authorized", "account removed"));
  });
}
