// Preload for the broker under a bench: once a second, appends the event-loop delay
// of this thread (p50, p99, max in ms) to $SB_LOOP_DELAY_FILE. Worker threads inherit
// the preload; their lines carry their thread id.
//   SB_LOOP_DELAY_FILE=/tmp/eld.log SB_BENCH_NODE_FLAGS="--require $PWD/bench/common/loop-delay.cjs" npm run bench:mqtt -- ...
const { monitorEventLoopDelay } = require('node:perf_hooks');
const { threadId } = require('node:worker_threads');
const { appendFileSync } = require('node:fs');

const file = process.env.SB_LOOP_DELAY_FILE;
if (file) {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const ms = (ns) => (ns / 1e6).toFixed(1);
  setInterval(() => {
    appendFileSync(file, `${new Date().toISOString()} pid ${process.pid} thread ${threadId} p50 ${ms(h.percentile(50))} p99 ${ms(h.percentile(99))} max ${ms(h.max)}\n`);
    h.reset();
  }, 1000).unref();
}
