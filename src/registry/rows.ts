// An account as a table row, the same columns in SQLite (sqlite.ts) and PostgreSQL
// (postgres.ts): its name, role and type, and per SCRAM hash the salt, iteration count,
// StoredKey and ServerKey (RFC 5802 §3), never the password.
import type { ScramHash, ScramKeys } from "../auth/scram.js";
import type { Account, Credentials, NewAccount, Role } from "./registry.js";

export interface AccountRow {
  name: string;
  role: Role;
  type: string | null;
  created_at: number;
}

type KeyColumn = `${ScramHash}_${"salt" | "stored" | "server"}`;
type IterColumn = `${ScramHash}_iter`;
export type CredentialRow = Record<KeyColumn, Buffer> & Record<IterColumn, number>;
export type FullRow = AccountRow & CredentialRow;

const HASHES: readonly ScramHash[] = ["sha1", "sha256"];

/** The columns of a full row, in table order. */
export const ACCOUNT_COLUMNS = [
  "name",
  "role",
  "type",
  ...HASHES.flatMap((h) => [`${h}_salt`, `${h}_iter`, `${h}_stored`, `${h}_server`]),
  "created_at",
] as const;

/** A full row's values in ACCOUNT_COLUMNS order, for a positional INSERT. */
export const rowValues = (row: object): unknown[] => ACCOUNT_COLUMNS.map((c) => (row as Record<string, unknown>)[c]);

/** PostgreSQL's INSERT of a full row, `$1`… in ACCOUNT_COLUMNS order; `suffix` e.g. an ON CONFLICT clause. */
export const insertAccountSql = (suffix = ""): string =>
  `INSERT INTO accounts (${ACCOUNT_COLUMNS.join(", ")}) VALUES (${ACCOUNT_COLUMNS.map((_, i) => `$${i + 1}`).join(", ")})${suffix}`;

export const toAccount = (row: AccountRow): Account => ({ name: row.name, role: row.role, type: row.type, createdAt: Number(row.created_at) });

const keys = (row: CredentialRow, h: ScramHash): ScramKeys => ({
  salt: row[`${h}_salt`],
  iterations: Number(row[`${h}_iter`]),
  storedKey: row[`${h}_stored`],
  serverKey: row[`${h}_server`],
});

export const toCredentials = (row: CredentialRow): Credentials => ({ sha1: keys(row, "sha1"), sha256: keys(row, "sha256") });

/** A new account's full row, created now. */
export function fullRow(account: NewAccount, now: number): FullRow {
  const row = { name: account.name, role: account.role, type: account.type, created_at: now } as FullRow;
  for (const h of HASHES) {
    const k = account.credentials[h];
    row[`${h}_salt`] = k.salt;
    row[`${h}_iter`] = k.iterations;
    row[`${h}_stored`] = k.storedKey;
    row[`${h}_server`] = k.serverKey;
  }
  return row;
}

/** The accounts table in a dialect's types: SQLite (BLOB, INTEGER) or PostgreSQL (bytea, integer, bigint). */
export function accountsTable(types: { bytes: string; int: string; time: string; text: string }, suffix = ""): string {
  const { bytes, int, time, text } = types;
  const keys = HASHES.map((h) => `${h}_salt ${bytes} NOT NULL, ${h}_iter ${int} NOT NULL, ${h}_stored ${bytes} NOT NULL, ${h}_server ${bytes} NOT NULL`).join(",\n  ");
  return `CREATE TABLE IF NOT EXISTS accounts (
  name ${text} PRIMARY KEY,
  role ${text} NOT NULL CHECK (role IN ('device', 'service', 'operator')),
  type ${text},
  ${keys},
  created_at ${time} NOT NULL
)${suffix};`;
}
