// The node flags bin/switchboard.js runs the broker with: those of its shebang line
// (`#!/usr/bin/env -S node FLAGS`). A bench that starts the broker as
// `node FLAGS bin/switchboard.js start` (to add its own flags, or to run another
// checkout) runs it as `./bin/switchboard.js start` and the systemd unit do.
import { readFileSync } from 'node:fs';

export function brokerNodeFlags(bin: string): string[] {
  const first = readFileSync(bin, 'utf8').split('\n', 1)[0]!;
  return /^#!\S*env -S node\s+(.*)$/.exec(first)?.[1]?.trim().split(/\s+/) ?? [];
}
