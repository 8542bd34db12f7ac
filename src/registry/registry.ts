// The account registry (docs/cli.md) as the rest of the broker sees it: the accounts
// in a directory kept current by a change feed, their keys and last-seen times.
import type { ScramHash, ScramKeys } from "../auth/scram.js";

export const ROLES = ["device", "service", "operator"] as const;
export type Role = (typeof ROLES)[number];
export const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export interface Account {
  name: string;
  role: Role;
  /** Device type; null for services and operators. */
  type: string | null;
  createdAt: number;
}

export type Credentials = Record<ScramHash, ScramKeys>;

export interface NewAccount {
  name: string;
  role: Role;
  type: string | null;
  credentials: Credentials;
}

export interface LastSeen {
  at: number;
  status: string | null;
}

export type AccountChange = { op: "add"; account: Account } | { op: "remove"; account: Account };

/**
 * Reads on hot paths (get, list, lastSeen) are synchronous over a directory kept in
 * memory; what may need the storage (stored keys, writes, secrets) is asynchronous, so
 * a registry on a database server (PostgreSQL) implements the same interface.
 */
export interface Registry {
  get(name: string): Account | undefined;
  list(role?: Role): Account[];
  /** The stored SCRAM keys; looked up for unknown names too, so both take the same path. */
  credentials(name: string): Promise<Credentials | undefined>;
  add(account: NewAccount): Promise<Account>;
  /** All or nothing: one transaction (bulk import). */
  addMany(accounts: NewAccount[]): Promise<void>;
  remove(name: string): Promise<Account | undefined>;
  lastSeen(name: string): LastSeen | undefined;
  /** Records and stores it; `storedElsewhere`: another node of a cluster stores it, this process only remembers it. */
  setLastSeen(name: string, seen: LastSeen, storedElsewhere?: boolean): void;
  /** Changes made by any process (CLI or broker); delivered after they commit. */
  onChange(listener: (change: AccountChange) => void): () => void;
  /**
   * A random server secret by name, made on first use and the same from then on for
   * every process sharing this registry (the decoy salts of unknown names).
   */
  secret(name: string): Promise<Buffer>;
  close(): Promise<void>;
}

export type RegistryErrorCode = "SB_ERR_DUPLICATE" | "SB_ERR_NOT_FOUND" | "SB_ERR_BAD_NAME" | "SB_ERR_BAD_TYPE" | "SB_ERR_BAD_ROLE";

/**
 * The registry's storage cannot be reached (a database server down): the stored keys
 * of an account not seen before cannot be read. Not the client's fault, so not a
 * failed login: MQTT answers CONNACK 3, SASL temporary-auth-failure.
 */
export class RegistryUnavailableError extends Error {
  readonly code = "SB_ERR_UNAVAILABLE";
}

export class RegistryError extends Error {
  constructor(
    readonly code: RegistryErrorCode,
    message: string,
  ) {
    super(message);
  }
}
