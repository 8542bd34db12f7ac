// Registry on embedded SQLite in dataDir. WAL mode lets the CLI write while a running
// broker reads; the broker learns of CLI changes from the account_changes log, which
// triggers fill inside the writer's own transaction.
import Database from "better-sqlite3";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { privateDatabase, privateDir } from "../private-files.js";
import { RegistryError, type Account, type AccountChange, type LastSeen, type NewAccount, type Registry, type Role } from "./registry.js";
import { accountsTable, fullRow, toAccount, toCredentials, type AccountRow, type CredentialRow } from "./rows.js";

const SCHEMA = `
${accountsTable({ bytes: "BLOB", int: "INTEGER", time: "INTEGER", text: "TEXT" }, " WITHOUT ROWID")}
CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS last_seen (name TEXT PRIMARY KEY, at INTEGER NOT NULL, status TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS account_changes (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT NOT NULL, name TEXT NOT NULL, role TEXT NOT NULL, type TEXT, created_at INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS accounts_added AFTER INSERT ON accounts BEGIN
  INSERT INTO account_changes (op, name, role, type, created_at) VALUES ('add', NEW.name, NEW.role, NEW.type, NEW.created_at);
END;
CREATE TRIGGER IF NOT EXISTS accounts_removed AFTER DELETE ON accounts BEGIN
  INSERT INTO account_changes (op, name, role, type, created_at) VALUES ('remove', OLD.name, OLD.role, OLD.type, OLD.created_at);
  DELETE FROM last_seen WHERE name = OLD.name;
END;
`;

export interface SqliteRegistryOptions {
  dataDir: string;
  /** How often to look for changes made by other processes (the CLI). */
  pollMs?: number;
  /** A last-seen write that failed (e.g. the database stayed locked past busy_timeout). */
  onError?: (err: Error) => void;
}

/** Shortest interval between change-log reads caused by lookups of unknown names. */
const MISS_POLL_MS = 20;

/** How long last-seen times are gathered before one transaction writes them. */
export const SEEN_WRITE_MS = 100;

export function openSqliteRegistry({ dataDir, pollMs = 500, onError = () => {} }: SqliteRegistryOptions): Registry {
  privateDir(dataDir);
  const file = join(dataDir, "registry.sqlite");
  privateDatabase(file);
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  db.pragma("busy_timeout = 5000");
  db.pragma("synchronous = NORMAL");
  db.exec(SCHEMA);

  const stmt = {
    all: db.prepare<[], AccountRow>("SELECT name, role, type, created_at FROM accounts ORDER BY name"),
    credentials: db.prepare<[string], CredentialRow>("SELECT * FROM accounts WHERE name = ?"),
    insert: db.prepare(
      `INSERT INTO accounts VALUES (@name, @role, @type, @sha1_salt, @sha1_iter, @sha1_stored, @sha1_server,
        @sha256_salt, @sha256_iter, @sha256_stored, @sha256_server, @created_at)`,
    ),
    remove: db.prepare<[string], AccountRow>("DELETE FROM accounts WHERE name = ? RETURNING name, role, type, created_at"),
    lastSeen: db.prepare<[string], { at: number; status: string | null }>("SELECT at, status FROM last_seen WHERE name = ?"),
    // Only for an account that still exists: the write may come a moment after another
    // process removed it (and with it its last_seen row).
    setLastSeen: db.prepare(
      "INSERT INTO last_seen (name, at, status) SELECT @name, @at, @status WHERE EXISTS (SELECT 1 FROM accounts WHERE name = @name) ON CONFLICT(name) DO UPDATE SET at = excluded.at, status = excluded.status",
    ),
    changesSince: db.prepare<[number], { seq: number; op: "add" | "remove"; name: string; role: Role; type: string | null; created_at: number }>(
      "SELECT seq, op, name, role, type, created_at FROM account_changes WHERE seq > ? ORDER BY seq",
    ),
    lastChange: db.prepare<[], { seq: number | null }>("SELECT max(seq) AS seq FROM account_changes"),
    prune: db.prepare("DELETE FROM account_changes WHERE seq <= ? - 100000"),
    // The first process to ask makes the secret; every later one reads that one.
    makeSecret: db.prepare<[string, Buffer]>("INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT(name) DO NOTHING"),
    secret: db.prepare<[string], { value: Buffer }>("SELECT value FROM secrets WHERE name = ?"),
  };

  // The directory: every account in memory (10,000 devices are a few MB), kept
  // current from the change log so reads on hot paths never touch the disk.
  const directory = new Map<string, Account>(stmt.all.all().map((row) => [row.name, toAccount(row)]));
  let seenSeq = stmt.lastChange.get()?.seq ?? 0;
  const listeners = new Set<(change: AccountChange) => void>();

  let polledAt = 0;
  function pollChanges(): void {
    polledAt = Date.now();
    const rows = stmt.changesSince.all(seenSeq);
    for (const row of rows) {
      seenSeq = row.seq;
      const account = toAccount(row);
      if (row.op === "add") directory.set(account.name, account);
      else directory.delete(account.name);
      for (const listener of listeners) listener({ op: row.op, account });
    }
    if (rows.length) stmt.prune.run(seenSeq);
  }
  const timer = setInterval(pollChanges, pollMs);
  timer.unref();

  const insertAll = db.transaction((accounts: NewAccount[]) => {
    const now = Date.now();
    for (const account of accounts) {
      try {
        stmt.insert.run(fullRow(account, now));
      } catch (err) {
        if ((err as { code?: string }).code === "SQLITE_CONSTRAINT_PRIMARYKEY")
          throw new RegistryError("SB_ERR_DUPLICATE", `'${account.name}' already exists`);
        throw err;
      }
    }
  });

  // Last-seen times are written behind: every device that connects or leaves within
  // SEEN_WRITE_MS shares one transaction, not one autocommit each, which a connect
  // storm would pay per device (docs/benchmarks.md). Reads in this process see
  // pending ones; another process (the CLI) sees them at most SEEN_WRITE_MS later.
  const pendingSeen = new Map<string, LastSeen>();
  let seenTimer: NodeJS.Timeout | null = null;
  const writeSeen = db.transaction((entries: Array<[string, LastSeen]>) => {
    for (const [name, seen] of entries) stmt.setLastSeen.run({ name, at: seen.at, status: seen.status });
  });
  function flushSeen(): void {
    seenTimer = null;
    if (pendingSeen.size === 0) return;
    const entries = [...pendingSeen];
    pendingSeen.clear();
    try {
      writeSeen(entries);
    } catch (err) {
      // Kept (unless a newer time came meanwhile) and written with the next change, or at close.
      for (const [name, seen] of entries) if (!pendingSeen.has(name)) pendingSeen.set(name, seen);
      onError(err as Error);
    }
  }

  return {
    // A name not in the directory may have been added a moment ago by another process
    // (`switchboard device add` just before the device's first CONNECT): the change
    // log is read now rather than at the next poll, at most every MISS_POLL_MS, so
    // a stream of unknown names costs one indexed query per interval, not per name.
    get: (name) => {
      const account = directory.get(name);
      if (account || Date.now() - polledAt < MISS_POLL_MS) return account;
      pollChanges();
      return directory.get(name);
    },
    list: (role) => [...directory.values()].filter((a) => !role || a.role === role),
    async credentials(name) {
      const r = stmt.credentials.get(name);
      return r ? toCredentials(r) : undefined;
    },
    async add(account) {
      insertAll([account]);
      pollChanges();
      return directory.get(account.name)!;
    },
    async addMany(accounts) {
      insertAll(accounts);
      pollChanges();
    },
    async remove(name) {
      pendingSeen.delete(name);
      const removed = stmt.remove.get(name);
      pollChanges();
      return removed ? toAccount(removed) : undefined;
    },
    lastSeen(name): LastSeen | undefined {
      return pendingSeen.get(name) ?? stmt.lastSeen.get(name);
    },
    setLastSeen(name, seen) {
      pendingSeen.set(name, seen);
      seenTimer ??= setTimeout(flushSeen, SEEN_WRITE_MS).unref();
    },
    async secret(name) {
      stmt.makeSecret.run(name, randomBytes(32));
      return stmt.secret.get(name)!.value;
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {
      clearInterval(timer);
      if (seenTimer) clearTimeout(seenTimer);
      flushSeen();
      db.close();
    },
  };
}
