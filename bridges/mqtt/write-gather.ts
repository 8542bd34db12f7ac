// The connections whose sockets are corked this event-loop turn: one check-phase
// callback uncorks them all, so what a turn wrote to a client leaves in one system call.
export interface Corked {
  flushGathered(): void;
}

let corked = new Set<Corked>();

function uncorkAll(): void {
  // A fresh set first: a write made while flushing gathers for the next turn.
  const conns = corked;
  corked = new Set();
  for (const conn of conns) conn.flushGathered();
}

export function uncorkAtCheck(conn: Corked): void {
  if (corked.size === 0) setImmediate(uncorkAll);
  corked.add(conn);
}

export function forgetCorked(conn: Corked): void {
  corked.delete(conn);
}
