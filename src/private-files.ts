// The data dir holds SCRAM keys, server secrets, the TLS key and telemetry: its files
// are readable by their owner only (docs/operations.md, "Security"), whatever the umask. New ones are
// created so; existing ones left open to group or others by an earlier version are
// narrowed in place.
import { chmodSync, closeSync, mkdirSync, openSync, statSync } from "node:fs";
import { dirname } from "node:path";

const DIR_MODE = 0o700;
/** For a file written whole by the caller (`writeFileSync(…, { mode })`): owner read and write. */
export const FILE_MODE = 0o600;

/** Creates `dir` with mode 0700 (its missing parents as usual), or narrows an existing one to 0700. */
export function privateDir(dir: string): void {
  mkdirSync(dirname(dir), { recursive: true });
  try {
    mkdirSync(dir, { mode: DIR_MODE });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST" || !statSync(dir).isDirectory()) throw err;
    narrow(dir, DIR_MODE);
  }
}

/**
 * Creates `file` empty with mode 0600 unless it exists (or, with `create: false`, does
 * nothing when it is missing); an existing one is narrowed to 0600.
 */
export function privateFile(file: string, opts: { create?: boolean } = {}): void {
  if (opts.create === false) return narrow(file, FILE_MODE);
  // "a": never truncates, and the mode applies only when the file is created.
  closeSync(openSync(file, "a", FILE_MODE));
  narrow(file, FILE_MODE);
}

/**
 * A SQLite database file, before the driver opens it: SQLite creates the -wal, -shm
 * and -journal files with the database file's own mode, so a 0600 database keeps
 * them private too. Ones left by an earlier version are narrowed as well.
 */
export function privateDatabase(file: string): void {
  privateFile(file);
  for (const suffix of ["-wal", "-shm", "-journal"]) privateFile(file + suffix, { create: false });
}

/** chmod when group or others have any access; silent when it is missing or not ours to change. */
function narrow(path: string, mode: number): void {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  if ((st.mode & 0o077) === 0) return;
  // A sticky directory (a dataDir of /tmp, say) is shared by design; and a path
  // owned by someone else is theirs to set up, even for root.
  if (st.mode & 0o1000 || st.uid !== process.geteuid?.()) return;
  chmodSync(path, mode);
}
