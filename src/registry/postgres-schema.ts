// The registry's PostgreSQL schema (docs/cluster.md), created and upgraded only by
// `switchboard migrate`; a node or CLI command meeting a schema it does not know
// refuses to go on and names the command to run. `migrate --from DATADIR` copies a
// standalone node's SQLite registry, SCRAM keys as they are.
import Database from "better-sqlite3";
import { existsSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { ACCOUNT_COLUMNS, accountsTable, insertAccountSql, rowValues } from "./rows.js";

/** The schema this code reads and writes. */
export const SCHEMA_VERSION = 1;
/** The NOTIFY channel of account changes. */
export const CHANGES_CHANNEL = "switchboard_accounts";
/** pg_advisory_xact_lock key: one migration at a time, whichever node or CLI runs it. */
const MIGRATION_LOCK = 0x5b0a4d;

const SCHEMA_V1 = `
${accountsTable({ bytes: "bytea", int: "integer", time: "bigint", text: "text" })}
CREATE TABLE IF NOT EXISTS secrets (name text PRIMARY KEY, value bytea NOT NULL);
CREATE TABLE IF NOT EXISTS last_seen (
  name text PRIMARY KEY REFERENCES accounts (name) ON DELETE CASCADE,
  at bigint NOT NULL,
  status text
);
CREATE OR REPLACE FUNCTION switchboard_account_changed() RETURNS trigger AS $$
DECLARE r accounts;
BEGIN
  IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
  PERFORM pg_notify('${CHANGES_CHANNEL}', json_build_object(
    'op', CASE TG_OP WHEN 'DELETE' THEN 'remove' ELSE 'add' END,
    'name', r.name, 'role', r.role, 'type', r.type, 'created_at', r.created_at)::text);
  RETURN NULL;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS accounts_changed ON accounts;
CREATE TRIGGER accounts_changed AFTER INSERT OR DELETE ON accounts FOR EACH ROW EXECUTE FUNCTION switchboard_account_changed();
`;

export class SchemaError extends Error {
  readonly code = "SB_ERR_SCHEMA";
}

/** PostgreSQL could not be reached or refused us; the message names where, never the URL's password. */
export class PostgresUnavailableError extends Error {
  readonly code = "SB_ERR_POSTGRES";
}

/** Runs `step`, turning a failure to connect into one line that names host and port. */
export async function connecting<T>(url: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    if (err instanceof SchemaError) throw err;
    const u = new URL(url);
    const where = `PostgreSQL at ${u.hostname}:${u.port || 5432} (cluster.postgres.url)`;
    const { code, message } = err as { code?: string; message: string };
    // A five-character SQLSTATE: the server answered (no such database, authentication failed).
    if (code?.length === 5) throw new PostgresUnavailableError(`${where}: ${message}`);
    throw new PostgresUnavailableError(`cannot reach ${where}: ${code ?? message}`);
  }
}

type Queryable = Pick<pg.Pool | pg.PoolClient, "query">;

async function versionOf(db: Queryable): Promise<number | null> {
  const exists = await db.query<{ t: string | null }>("SELECT to_regclass('switchboard_schema')::text AS t");
  if (!exists.rows[0]?.t) return null;
  return (await db.query<{ version: number }>("SELECT version FROM switchboard_schema")).rows[0]?.version ?? null;
}

/** Refuses a database whose schema is missing, older or newer than this code's. */
export async function checkSchema(db: Queryable): Promise<void> {
  const version = await versionOf(db);
  if (version === SCHEMA_VERSION) return;
  if (version === null) throw new SchemaError("the PostgreSQL database has no Switchboard schema: run `switchboard migrate --config FILE`");
  if (version < SCHEMA_VERSION) throw new SchemaError(`the PostgreSQL schema is version ${version}, this Switchboard needs ${SCHEMA_VERSION}: run \`switchboard migrate --config FILE\``);
  throw new SchemaError(`the PostgreSQL schema is version ${version}, newer than this Switchboard knows (${SCHEMA_VERSION}): upgrade Switchboard`);
}

export interface MigrationResult {
  from: number | null;
  to: number;
  /** With --from: accounts copied, and those already present (left as they are). */
  copied?: number;
  skipped?: number;
}

/** Creates or upgrades the schema; with `fromDataDir`, copies that standalone registry in the same transaction. */
export async function migrate(url: string, fromDataDir?: string): Promise<MigrationResult> {
  const source = fromDataDir ? openStandalone(fromDataDir) : null;
  const client = new pg.Client({ connectionString: url });
  client.on("error", () => {}); // a broken connection fails the query in progress, reported there
  await connecting(url, () => client.connect()).catch((err) => {
    source?.close();
    throw err;
  });
  try {
    await client.query("BEGIN");
    await client.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
    const from = await versionOf(client);
    if (from !== null && from > SCHEMA_VERSION) throw new SchemaError(`the PostgreSQL schema is version ${from}, newer than this Switchboard knows (${SCHEMA_VERSION}): upgrade Switchboard`);
    await client.query(SCHEMA_V1);
    await client.query("CREATE TABLE IF NOT EXISTS switchboard_schema (id integer PRIMARY KEY CHECK (id = 0), version integer NOT NULL)");
    await client.query("INSERT INTO switchboard_schema (id, version) VALUES (0, $1) ON CONFLICT (id) DO UPDATE SET version = excluded.version", [SCHEMA_VERSION]);
    const result: MigrationResult = { from, to: SCHEMA_VERSION };
    if (source) Object.assign(result, await copyStandalone(source, client));
    await client.query("COMMIT");
    return result;
  } catch (err) {
    await client.query("ROLLBACK").catch(() => {});
    throw err;
  } finally {
    source?.close();
    await client.end();
  }
}

function openStandalone(dataDir: string): Database.Database {
  const file = join(dataDir, "registry.sqlite");
  if (!existsSync(file)) throw new SchemaError(`--from ${dataDir}: no registry.sqlite there`);
  return new Database(file, { readonly: true, fileMustExist: true });
}

/** Accounts (keys as they are), last-seen times and secrets; a name already present is left as it is. */
async function copyStandalone(source: Database.Database, client: pg.Client): Promise<{ copied: number; skipped: number }> {
  const insert = insertAccountSql(" ON CONFLICT (name) DO NOTHING");
  let copied = 0;
  let skipped = 0;
  for (const row of source.prepare<[], Record<string, unknown>>(`SELECT ${ACCOUNT_COLUMNS.join(", ")} FROM accounts ORDER BY name`).iterate()) {
    const { rowCount } = await client.query(insert, rowValues(row));
    if (rowCount) copied++;
    else skipped++;
  }
  for (const r of source.prepare<[], { name: string; at: number; status: string | null }>("SELECT name, at, status FROM last_seen").iterate())
    await client.query("INSERT INTO last_seen (name, at, status) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING", [r.name, r.at, r.status]);
  // The decoy secret too, so unknown names keep the salts they had.
  for (const r of source.prepare<[], { name: string; value: Buffer }>("SELECT name, value FROM secrets").iterate())
    await client.query("INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", [r.name, r.value]);
  return { copied, skipped };
}
