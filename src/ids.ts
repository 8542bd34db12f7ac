// Unguessable ids (stream ids, command ids, ad-hoc session ids), 72 random bits in
// base64url. Drawn from a pool refilled 4 KiB at a time, not a randomBytes() call
// per id (two per command).
import { randomFillSync } from "node:crypto";

const ID_BYTES = 9;
const pool = Buffer.allocUnsafe(4096 - (4096 % ID_BYTES));
let offset = pool.length;

export function randomId(): string {
  if (offset === pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const id = pool.toString("base64url", offset, offset + ID_BYTES);
  offset += ID_BYTES;
  return id;
}
