// A "checkout" that runs this build with some settings changed, for an A/B of a
// setting with bench/mqtt/run.ts or bench/telemetry/run.ts (`switchboard@DIR`):
//   node --import tsx bench/common/config-variant.ts DIR '{"auth":{"hashNice":5}}'
//   npm run bench:mqtt -- --no-build --brokers switchboard,switchboard@DIR --connects-only --runs 3
// DIR gets a bin/switchboard.js that merges the JSON into the config file the bench
// hands it, then starts this checkout's broker (build it first).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const [dir, json] = process.argv.slice(2);
if (!dir || !json || dir.startsWith('-')) {
  const help = dir === '--help' || dir === '-h';
  (help ? console.log : console.error)("usage: node --import tsx bench/common/config-variant.ts DIR '<JSON of the settings to change>'");
  process.exit(help ? 0 : 2);
}
JSON.parse(json); // fails here, not in the broker, when it is not JSON
const root = resolve(fileURLToPath(new URL('../..', import.meta.url)));
mkdirSync(join(dir, 'bin'), { recursive: true });
// Its first line is this build's (the shebang with the broker's node flags, bench/common/broker-flags.ts).
const shebang = readFileSync(join(root, 'bin', 'switchboard.js'), 'utf8').split('\n', 1)[0];
writeFileSync(join(dir, 'bin', 'switchboard.js'), `${shebang}
// Made by bench/common/config-variant.ts.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
const { parse, stringify } = createRequire(${JSON.stringify(join(root, 'package.json'))})("yaml");
const merge = (a, b) => { for (const [k, v] of Object.entries(b)) a[k] = v && typeof v === "object" && !Array.isArray(v) && a[k] && typeof a[k] === "object" ? merge(a[k], v) : v; return a; };
const at = process.argv.indexOf("--config");
if (at > 0) {
  const file = process.argv[at + 1];
  writeFileSync(file, stringify(merge(parse(readFileSync(file, "utf8")) ?? {}, ${json})));
}
await import(${JSON.stringify(join(root, 'bin', 'switchboard.js'))});
`);
console.log(`${dir}: this build with ${json}`);
