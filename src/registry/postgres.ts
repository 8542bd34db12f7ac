// Registry on PostgreSQL (docs/cluster.md), shared by every node of a cluster and by
// the CLI. The directory of accounts is held in memory, as with SQLite, and kept
// current by LISTEN/NOTIFY: a trigger notifies every change inside the writer's
// transaction, so PostgreSQL delivers it once that commits. A listening connection
// that was lost misses notifications, so on reconnecting the directory is read again
// and the difference reported as changes.
import { randomBytes } from "node:crypto";
import pg from "pg";
import { RegistryError, RegistryUnavailableError, type Account, type AccountChange, type Credentials, type LastSeen, type NewAccount, type Registry } from "./registry.js";
import { ACCOUNT_COLUMNS, fullRow, insertAccountSql, rowValues, toAccount, toCredentials, type AccountRow, type FullRow } from "./rows.js";
import { CHANGES_CHANNEL, checkSchema, connecting } from "./postgres-schema.js";

export interface PostgresRegistryOptions {
  url: string;
  /** A failed background step (last-seen write, lost listener); retried. */
  onError?: (err: Error) => void;
  /** Connections for queries (the listener has its own). */
  poolSize?: number;
  /** Accounts whose stored keys are kept, for logins while PostgreSQL cannot be reached. */
  keptKeys?: number;
  /** A query (or a connection) not answered by then fails. */
  timeoutMs?: number;
}

/** How long last-seen times are gathered before one statement writes them. */
const SEEN_WRITE_MS = 100;
/** Wait before listening again after the listening connection was lost. */
const RELISTEN_MS = 1000;

const UNIQUE_VIOLATION = "23505";

const INSERT = insertAccountSql();

export async function openPostgresRegistry({ url, onError = () => {}, poolSize = 4, keptKeys = 100_000, timeoutMs = 5000 }: PostgresRegistryOptions): Promise<Registry> {
  const pool = new pg.Pool({ connectionString: url, max: poolSize, connectionTimeoutMillis: timeoutMs, query_timeout: timeoutMs });
  // An idle connection that breaks is the pool's to replace; the error is only reported.
  pool.on("error", (err) => onError(err));
  try {
    await connecting(url, () => checkSchema(pool));
  } catch (err) {
    await pool.end();
    throw err;
  }

  const directory = new Map<string, Account>();
  /**
   * The stored keys last read per account, most recent last: while PostgreSQL cannot be
   * reached, an account that logged in before can still log in (its keys change only
   * with the account, whose removal drops them here).
   */
  const kept = new Map<string, Credentials>();
  const keep = (name: string, credentials: Credentials) => {
    kept.delete(name);
    kept.set(name, credentials);
    if (kept.size > keptKeys) kept.delete(kept.keys().next().value!);
  };
  const seen = new Map<string, LastSeen>();
  const listeners = new Set<(change: AccountChange) => void>();
  const emit = (change: AccountChange) => {
    for (const listener of listeners) listener(change);
  };
  /** Applies a change unless the directory already shows it (our own write, or a repeat). */
  function apply(change: AccountChange): void {
    const known = directory.get(change.account.name);
    if (change.op === "add") {
      if (known && known.createdAt === change.account.createdAt) return;
      if (known) emit({ op: "remove", account: known });
      directory.set(change.account.name, change.account);
    } else {
      if (!known) return;
      directory.delete(change.account.name);
      seen.delete(change.account.name);
    }
    kept.delete(change.account.name);
    emit(change);
  }

  /** Reads every account; what differs from the directory is reported as changes. */
  async function reload(): Promise<void> {
    const { rows } = await pool.query<AccountRow>("SELECT name, role, type, created_at FROM accounts");
    const fresh = new Map(rows.map((r) => [r.name, toAccount(r)]));
    for (const account of [...directory.values()]) if (!fresh.has(account.name)) apply({ op: "remove", account });
    for (const account of fresh.values()) apply({ op: "add", account });
  }

  let closing = false;
  let listener: pg.Client | null = null;
  async function listen(): Promise<void> {
    const client = new pg.Client({ connectionString: url });
    client.on("notification", (n) => {
      if (n.channel !== CHANGES_CHANNEL || !n.payload) return;
      const { op, ...row } = JSON.parse(n.payload) as AccountRow & { op: "add" | "remove" };
      apply({ op, account: toAccount(row) });
    });
    const lost = (err?: Error) => {
      if (listener !== client) return;
      listener = null;
      client.end().catch(() => {});
      if (closing) return;
      onError(err ?? new Error("the PostgreSQL connection that listens for account changes ended"));
      setTimeout(() => void relisten(), RELISTEN_MS).unref();
    };
    client.on("error", lost);
    client.on("end", () => lost());
    await client.connect();
    await client.query(`LISTEN ${CHANGES_CHANNEL}`);
    listener = client;
  }
  /** Tried again every RELISTEN_MS until it works; the loss was reported once, the retries are not. */
  async function relisten(): Promise<void> {
    if (closing) return;
    try {
      await listen();
      await reload();
    } catch {
      // Listening but not re-read: start over, so that the read follows a fresh LISTEN.
      const half = listener;
      listener = null;
      await half?.end().catch(() => {});
      setTimeout(() => void relisten(), RELISTEN_MS).unref();
    }
  }

  // Listening first, then reading: a change committed in between is seen twice, never missed.
  await listen();
  await reload();
  for (const r of (await pool.query<{ name: string; at: string; status: string | null }>("SELECT name, at, status FROM last_seen")).rows) seen.set(r.name, { at: Number(r.at), status: r.status });

  // Last-seen times are written behind, every device that connects or leaves within
  // SEEN_WRITE_MS in one statement (a connect storm would otherwise cost a round trip each).
  const pendingSeen = new Map<string, LastSeen>();
  let seenTimer: NodeJS.Timeout | null = null;
  let seenWrite: Promise<void> = Promise.resolve();
  function flushSeen(): Promise<void> {
    seenTimer = null;
    if (pendingSeen.size === 0) return seenWrite;
    const entries = [...pendingSeen];
    pendingSeen.clear();
    seenWrite = seenWrite.then(() =>
      pool
        .query(
          // Only for accounts that still exist: another process may have removed one meanwhile.
          `INSERT INTO last_seen (name, at, status)
             SELECT u.name, u.at, u.status FROM unnest($1::text[], $2::bigint[], $3::text[]) AS u(name, at, status)
             WHERE EXISTS (SELECT 1 FROM accounts a WHERE a.name = u.name)
           ON CONFLICT (name) DO UPDATE SET at = excluded.at, status = excluded.status`,
          [entries.map(([n]) => n), entries.map(([, s]) => s.at), entries.map(([, s]) => s.status)],
        )
        .then(
          () => {},
          (err: Error) => {
            // Kept (unless a newer time came meanwhile) and written with the next change, or at close.
            for (const [name, s] of entries) if (!pendingSeen.has(name)) pendingSeen.set(name, s);
            onError(err);
          },
        ),
    );
    return seenWrite;
  }

  async function insert(accounts: NewAccount[]): Promise<Account[]> {
    const client = await pool.connect();
    const now = Date.now();
    try {
      await client.query("BEGIN");
      for (const account of accounts) await client.query(INSERT, rowValues(fullRow(account, now)));
      await client.query("COMMIT");
    } catch (err) {
      await client.query("ROLLBACK").catch(() => {});
      if ((err as { code?: string }).code === UNIQUE_VIOLATION) {
        const name = /\(name\)=\((.*)\)/.exec((err as { detail?: string }).detail ?? "")?.[1];
        throw new RegistryError("SB_ERR_DUPLICATE", `'${name ?? "an account"}' already exists`);
      }
      throw err;
    } finally {
      client.release();
    }
    // Known here at once; the notification of the same change is then a repeat.
    const added = accounts.map((a) => ({ name: a.name, role: a.role, type: a.type, createdAt: now }));
    for (const account of added) apply({ op: "add", account });
    return added;
  }

  return {
    get: (name) => directory.get(name),
    list: (role) => [...directory.values()].filter((a) => !role || a.role === role).sort((a, b) => (a.name < b.name ? -1 : 1)),
    async credentials(name) {
      let rows: FullRow[];
      try {
        ({ rows } = await pool.query<FullRow>(`SELECT ${ACCOUNT_COLUMNS.join(", ")} FROM accounts WHERE name = $1`, [name]));
      } catch (err) {
        const known = kept.get(name);
        if (known && directory.has(name)) return known;
        throw new RegistryUnavailableError(`the registry (PostgreSQL) cannot be reached: ${(err as { code?: string }).code ?? (err as Error).message}`);
      }
      const row = rows[0];
      if (!row) return undefined;
      // Added a moment ago by another process, before its notification arrived.
      if (!directory.has(row.name)) apply({ op: "add", account: toAccount(row) });
      const credentials = toCredentials(row);
      keep(row.name, credentials);
      return credentials;
    },
    add: async (account) => (await insert([account]))[0]!,
    addMany: async (accounts) => void (await insert(accounts)),
    async remove(name) {
      pendingSeen.delete(name);
      const { rows } = await pool.query<AccountRow>("DELETE FROM accounts WHERE name = $1 RETURNING name, role, type, created_at", [name]);
      const removed = rows[0] ? toAccount(rows[0]) : undefined;
      if (removed) apply({ op: "remove", account: removed });
      return removed;
    },
    // Pending times are in `seen` too (setLastSeen puts them in both).
    lastSeen: (name) => seen.get(name),
    setLastSeen(name, s, storedElsewhere = false) {
      seen.set(name, s);
      if (storedElsewhere) return;
      pendingSeen.set(name, s);
      seenTimer ??= setTimeout(() => void flushSeen(), SEEN_WRITE_MS).unref();
    },
    async secret(name) {
      // The first process to ask makes the secret; every later one reads that one.
      await pool.query("INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", [name, randomBytes(32)]);
      return (await pool.query<{ value: Buffer }>("SELECT value FROM secrets WHERE name = $1", [name])).rows[0]!.value;
    },
    onChange(l) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    async close() {
      closing = true;
      if (seenTimer) clearTimeout(seenTimer);
      await flushSeen();
      const client = listener;
      listener = null;
      await client?.end().catch(() => {});
      await pool.end();
    },
  };
}
