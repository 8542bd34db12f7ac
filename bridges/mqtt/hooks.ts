// aedes' policy hooks: who may connect (the shared login, with its bans), what each
// account may publish and subscribe to (acl.ts), and telemetry validated and spooled
// before its PUBACK on aedes' own path (most telemetry takes telemetry-path.ts).
import type { AedesOptions, AuthenticateError, Client } from "aedes";
import type { Logger } from "../../src/log.js";
import { banText, UNAVAILABLE_TEXT, type Login } from "../../src/auth/login.js";
import type { LinkReports } from "../../src/links/device-link.js";
import type { Shape } from "../../src/limits.js";
import { publishDenied, subscribeAllowed } from "./acl.js";
import { clientState, type ClientStates } from "./clients.js";
import type { MqttConnections } from "./connections.js";
import type { Refusals } from "./refusals.js";
import { GuardedConnection } from "./guard.js";

type Hooks = Pick<AedesOptions, "authenticate" | "authorizePublish" | "authorizeSubscribe">;

/** CONNACK return codes of MQTT 3.1.1 §3.2.2.3 that the broker gives. */
type ReturnCode = 2 | 3 | 4 | 5;

function refusal(code: ReturnCode, message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode: code }) as AuthenticateError;
}

export function mqttHooks(deps: {
  login: Login;
  states: ClientStates;
  connections: MqttConnections;
  reports: Pick<LinkReports, "telemetry" | "reply">;
  refusals: Refusals;
  counters: { authFailures: number; refusedSubscriptions: number };
  serviceShape: Shape;
  /** Whether a connection with this client id is registered (the new one takes it over). */
  takesOver: (clientId: string) => boolean;
  log: Logger;
}): Hooks {
  const { login, states, connections, reports, refusals, counters, log } = deps;
  const addressOf = (client: Client) => (client.conn as { remoteAddress?: string }).remoteAddress ?? "unknown";

  return {
    authenticate(client, username, password, done) {
      const address = addressOf(client);
      const fail = (code: ReturnCode, message: string) => {
        counters.authFailures++;
        log.info({ protocol: "mqtt", clientId: client.id, user: username, address, code }, "authentication failed");
        done(refusal(code, message), null);
      };
      if (!username || !password) return fail(4, "user name and password are required");
      login.password("mqtt", address, username, password.toString("utf8")).then((outcome) => {
        // §3.2.2.3: 5 (not authorized) while banned, whatever the password; not logged
        // one by one (the ban was, once; /metrics counts the refusals).
        if (!outcome.ok && outcome.ban) return done(refusal(5, banText(outcome.ban)), null);
        // §3.2.2.3: 3 (server unavailable): the registry could not be read; the device retries.
        if (!outcome.ok && outcome.unavailable) {
          log.warn({ protocol: "mqtt", clientId: client.id, address }, "login refused: the registry cannot be reached");
          return done(refusal(3, UNAVAILABLE_TEXT), null);
        }
        if (!outcome.ok) return fail(4, "bad user name or password");
        const { account } = outcome;
        // §3.1.3.1 lets the server refuse a client id: a device's is its own id.
        if (account.role === "device" && client.id !== account.name) return fail(2, `client id must be '${account.name}'`);
        if (account.role === "operator") return fail(5, "operators use XMPP");
        // The connection may have gone while the password was checked: aedes then drops
        // it without a clientDisconnect, so it must not be announced as a successor.
        if (client.closed) return done(refusal(5, "connection closed"), null);
        states.set(client, clientState(account));
        // Services command fleets over one connection: their own, higher read rate.
        if (account.role === "service" && client.conn instanceof GuardedConnection) client.conn.reshape(deps.serviceShape);
        if (account.role === "device") connections.authenticated(account, client, deps.takesOver(client.id));
        done(null, true);
      }, () => fail(4, "authentication error"));
    },

    authorizePublish(client, packet, done) {
      const state = client && states.get(client);
      if (!client || !state) return done(null);
      const { account, order } = state;
      const ticket = order.ticket();
      const answer = () => order.answer(ticket, () => done(null));
      // A device's own telemetry topic (exactly that string) is allowed: checked first,
      // it spares nearly every publish the general rules.
      if (packet.topic !== state.telemetry?.name) {
        const denied = publishDenied(account, packet.topic);
        if (denied) refusals.drop(client, account, packet, { error: denied, issues: [] });
        else if (account.role === "device") reports.reply(account.name, packet.payload as Buffer); // the only other topic a device may use
        return answer();
      }
      // Telemetry: validated and spooled before the PUBACK; only accepted samples are forwarded.
      reports.telemetry(account.name, packet.payload as Buffer, (result, err) => {
        const why = refusals.of(result, account.name, err);
        if (why) refusals.drop(client, account, packet, why);
        answer();
      });
    },

    authorizeSubscribe(client, subscription, done) {
      const account = states.get(client)?.account;
      if (account && subscribeAllowed(account, subscription.topic)) return done(null, subscription);
      counters.refusedSubscriptions++;
      // A null subscription is answered with SUBACK 0x80 for this filter (MQTT 3.1.1 §3.9.3).
      done(null, null);
    },
  };
}
