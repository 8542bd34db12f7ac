// Every package the code imports is declared in package.json, so an install from the
// lockfile alone gives it, at the version we chose, not one that happens to be hoisted
// by another package. The ones whose internals we use (bridges/mqtt's adapter files)
// are pinned exactly. Scanned as text, so imports inside code held in strings (a
// script handed to a child process) count too.
import t from "tap";
import { readdirSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const SELF = fileURLToPath(import.meta.url); // its examples are not imports
const SCANNED = ["src", "bridges", "bench", "devices", "schemas", "test"];
/** Whose private modules or fields bridges/mqtt reaches: a new version must be a deliberate change. */
const PINNED = ["aedes", "aedes-persistence", "mqemitter", "mqtt-packet"];

const SOURCE = /\.(?:[cm]?[jt]s|tsx)$/;
// `from "x"` (import and export), `import "x"`, `import("x")`, `require("x")`, `require.resolve("x")`.
const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\brequire(?:\.resolve)?\s*\(\s*)(["'])([^"'\n]+)\1/g;
// npm's package names (scoped or not); anything else in quotes after `from` is prose or a template.
const PACKAGE = /^(?:@[a-z0-9~-][a-z0-9._~-]*\/)?[a-z0-9~-][a-z0-9._~-]*$/;

/** The packages a source text imports: `x` of `x/sub/path`, `@s/x` of `@s/x/sub`; no built-ins, no paths. */
function importedPackages(text: string): Set<string> {
  const found = new Set<string>();
  for (const [, , specifier] of text.matchAll(SPECIFIER)) {
    if (/^[./]/.test(specifier!) || specifier!.includes(":")) continue; // relative, absolute, node:, file:, data:
    const name = specifier!.split("/").slice(0, specifier!.startsWith("@") ? 2 : 1).join("/");
    if (PACKAGE.test(name) && !builtinModules.includes(name)) found.add(name);
  }
  return found;
}

function* sourceFiles(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === "node_modules" || entry.name.startsWith(".")) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* sourceFiles(path);
    else if (SOURCE.test(entry.name) && path !== SELF) yield path;
  }
}

const manifest = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { name: string; dependencies?: Record<string, string>; devDependencies?: Record<string, string> };
const declared = { ...manifest.dependencies, ...manifest.devDependencies };

t.test("the scan finds every form of import and only packages", async (t) => {
  const text = [
    `import t from "tap";`,
    `import type { Client } from 'aedes';`,
    `export { x } from "@xmpp/xml";`,
    `import "./side-effect.js";`,
    `import "pino";`,
    `const m = await import("mqtt-packet");`,
    `const p = require( "aedes-persistence/lib/x.js" );`,
    `const where = require.resolve("@scope/pkg/deep/file.js");`,
    `import { readFileSync } from "node:fs"; import path from "path"; import x from "../x.js"; import y from "/abs/y.js";`,
    "const s = `from ${attrs.from}`; // copied from \"the store\"",
  ].join("\n");
  t.same([...importedPackages(text)].sort(), ["@scope/pkg", "@xmpp/xml", "aedes", "aedes-persistence", "mqtt-packet", "pino", "tap"]);
});

t.test("every imported package is declared in dependencies or devDependencies", async (t) => {
  const users = new Map<string, string[]>();
  for (const dir of SCANNED)
    for (const file of sourceFiles(join(ROOT, dir)))
      for (const name of importedPackages(readFileSync(file, "utf8"))) users.set(name, [...(users.get(name) ?? []), file.slice(ROOT.length)]);
  // The scan reached the tree: these are imported by the broker and by every test.
  t.ok(users.has("aedes") && users.has("tap"), `the scan saw the imports (${users.size} packages)`);
  const undeclared = [...users].filter(([name]) => name !== manifest.name && !(name in declared)).map(([name, files]) => `${name} (${files.slice(0, 3).join(", ")})`);
  t.same(undeclared, [], "imported but not in package.json");
});

t.test("packages whose internals we use are pinned to the installed version", async (t) => {
  for (const name of PINNED) {
    const installed = (JSON.parse(readFileSync(join(ROOT, "node_modules", name, "package.json"), "utf8")) as { version: string }).version;
    t.equal(manifest.dependencies?.[name], installed, `${name} declared exactly at ${installed}`);
  }
});
