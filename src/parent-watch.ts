// Notices that the process which started this one has exited. `npx switchboard start`
// runs the command through `sh -c`: npm forwards SIGTERM and SIGINT to that shell
// only, the shell dies of it without passing it on, and the broker learns of the
// stop only by being orphaned.
export interface ParentWatch {
  stop(): void;
}

export function watchParent(onGone: (parent: number) => void, intervalMs = 250): ParentWatch {
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    onGone(parent);
  }, intervalMs);
  // Never what keeps the process alive.
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
