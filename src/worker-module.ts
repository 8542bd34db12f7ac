// Worker threads from module files, run the same from dist/, under tap and under
// `node --import tsx`. Compiled (.js), a module runs as it is. From source (.ts) the
// thread needs a TypeScript loader of its own: tsx registers its hooks on the main
// thread only, and tap's (ts-node, passed on through execArgv) takes seconds to load
// in each thread. So a data: URL bootstrap registers tsx's loader in the thread, then
// imports the module, and the parent's loader flags are not passed on. tsx is a
// devDependency: it is resolved on the .ts path only, never from dist/.
import { Worker, type WorkerOptions } from "node:worker_threads";

/** The module `name` beside `base` (an import.meta.url), in base's form: `.ts` from source, `.js` from dist/. */
export function siblingModule(base: string, name: string): URL {
  return new URL(`./${name}${base.endsWith(".ts") ? ".ts" : ".js"}`, base);
}

/** Starts `module` as a worker thread; a .ts module through the tsx bootstrap. */
export function startModuleWorker(module: URL, options: WorkerOptions = {}): Worker {
  if (!module.pathname.endsWith(".ts")) return new Worker(module, options);
  const boot = `import { register } from ${JSON.stringify(import.meta.resolve("tsx/esm/api"))};\nregister();\nawait import(${JSON.stringify(module.href)});`;
  return new Worker(new URL(`data:text/javascript,${encodeURIComponent(boot)}`), { ...options, execArgv: options.execArgv ?? [] });
}
