// The XMPP server: router, session table and one module per feature, wired in
// order. Modules registered later can claim events before the generic ones.
import type { Logger } from "../log.js";
import type { Registry } from "../registry/registry.js";
import type { Authenticator } from "../auth/credentials.js";
import type { Login } from "../auth/login.js";
import { createRouter, type Router } from "./router.js";
import { createLocalSessionTable, type SessionTable } from "./sessions.js";
import { C2SStream, type C2SOptions } from "./c2s.js";
import { deliveryModule } from "./modules/delivery.js";
import { policyModule } from "./modules/policy.js";
import { presenceModule, type PresenceService } from "./modules/presence.js";
import { rosterModule } from "./modules/roster.js";
import { accountsModule } from "./modules/accounts.js";
import { discoModule, type Disco } from "./modules/disco.js";
import { pingModule } from "./modules/ping.js";
import { sessionModule } from "./modules/session.js";
import { lastActivityModule } from "./modules/last.js";
import type { C2STransport } from "./transport.js";

export interface XmppServer {
  router: Router;
  sessions: SessionTable;
  presence: PresenceService;
  disco: Disco;
  /** Stream errors sent to clients, by condition. */
  readonly streamErrors: ReadonlyMap<string, number>;
  /** A stream for a new connection on any transport. */
  openStream(transport: C2STransport): C2SStream;
}

export function createXmppServer(deps: { options: C2SOptions; registry: Registry; auth: Authenticator; login: Login; log: Logger; sessions?: SessionTable }): XmppServer {
  const { options, registry, auth, login, log } = deps;
  const sessions = deps.sessions ?? createLocalSessionTable();
  const router = createRouter({ domain: options.domain, sessions });
  const base = { router, registry };

  policyModule(base);
  deliveryModule(base);
  const presence = presenceModule(base);
  rosterModule(base);
  accountsModule(base);
  const disco = discoModule(base);
  pingModule({ router, disco });
  sessionModule({ router });
  lastActivityModule({ ...base, disco });
  const streamErrors = new Map<string, number>();

  return {
    router,
    sessions,
    presence,
    disco,
    streamErrors,
    openStream: (transport) => new C2SStream(transport, { options, auth, login, router, presence, log, streamErrors }),
  };
}
