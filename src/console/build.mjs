// Builds the operator console into dist/console/ (index.html, app.js, app.css) with
// esbuild: TypeScript and @xmpp/client bundled for the browser, minified, nothing
// loaded from elsewhere at run time. Run by `npm run build` / `prepare`, and by the
// console test when the built files are missing or older than the sources.
// Usage: node src/console/build.mjs [--dev]   (--dev: no minification)
import { copyFile, mkdir, readdir, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const out = join(root, "dist", "console");
const dev = process.argv.includes("--dev");

/** Telemetry units per device type (devices/*.ts `units`), from the compiled dist/devices when present. */
async function units() {
  const compiled = join(root, "dist", "devices", "index.js");
  if (!existsSync(compiled)) return {};
  try {
    const { deviceTypes } = await import(pathToFileURL(compiled).href);
    return Object.fromEntries(deviceTypes.map((t) => [t.name, t.units ?? {}]));
  } catch {
    return {};
  }
}

// @xmpp/resolve looks up DNS SRV records with node:dns for xmpp:// services; the
// console always connects to a ws(s):// URL, so in the browser that lookup is a stub.
const noDns = {
  name: "no-dns",
  setup(build) {
    build.onResolve({ filter: /^node:dns$|^dns$/ }, (args) => ({ path: args.path, namespace: "no-dns" }));
    build.onLoad({ filter: /.*/, namespace: "no-dns" }, () => ({
      contents: "const fail = () => Promise.reject(new Error('DNS lookups are not available in the browser'));\nexport default { resolve: fail, resolveSrv: fail, lookup: fail };\nexport const resolve = fail, resolveSrv = fail, lookup = fail;",
    }));
  },
};

export async function buildConsole() {
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
  const common = { bundle: true, minify: !dev, sourcemap: "linked", logLevel: "warning", legalComments: "none", target: ["es2022", "chrome109", "firefox115", "safari16"] };
  await esbuild.build({
    ...common,
    entryPoints: [join(here, "main.ts")],
    outfile: join(out, "app.js"),
    platform: "browser",
    format: "iife",
    plugins: [noDns],
    // @xmpp/events defers with process.nextTick; a microtask is the browser's equivalent.
    define: { "process.nextTick": "queueMicrotask", __UNITS__: JSON.stringify(await units()) },
  });
  await esbuild.build({ ...common, entryPoints: [join(here, "app.css")], outfile: join(out, "app.css") });
  await copyFile(join(here, "index.html"), join(out, "index.html"));
  return (await readdir(out)).sort();
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const files = await buildConsole();
  console.log(`console built: ${files.map((f) => `dist/console/${f}`).join(", ")}`);
}
