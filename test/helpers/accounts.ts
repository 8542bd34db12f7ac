// Account lists for test brokers, written as name → role or device type.
import type { TestAccount } from "./broker.js";

/**
 * `{ op1: "operator", svc: "service", dev1: "thermostat" }`: "operator" and "service"
 * are roles, anything else is a device of that type. Every password is "<name> pw".
 */
export function testAccounts(spec: Record<string, string>): TestAccount[] {
  return Object.entries(spec).map(([name, kind]) =>
    kind === "operator" || kind === "service" ? { name, role: kind, password: `${name} pw` } : { name, role: "device", type: kind, password: `${name} pw` },
  );
}

/** The password of `name` in `accounts`. */
export function passwordOf(accounts: readonly TestAccount[], name: string): string {
  const account = accounts.find((a) => a.name === name);
  if (!account) throw new Error(`no test account ${name}`);
  return account.password;
}
