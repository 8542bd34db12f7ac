// The edges every bench script shares: its command line (with --help, and the usage
// printed on a wrong option) and its end (the exit code, servers stopped on a crash).
import { parseArgs, type ParseArgsConfig } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;

/** The options most benches take: --quick, --runs N, --json FILE, --keep, --no-build. */
export const COMMON_OPTIONS = {
  quick: { type: 'boolean', default: false },
  runs: { type: 'string' },
  json: { type: 'string' },
  keep: { type: 'boolean', default: false },
  'no-build': { type: 'boolean', default: false },
} as const;

const HELP = { help: { type: 'boolean', short: 'h', default: false } } as const;

type Values<O extends Options> = ReturnType<typeof parseArgs<{ options: O & typeof HELP }>>['values'];

/**
 * Parses the command line against `options`. --help prints `usage` and exits 0; an
 * unknown option, a missing value or a stray argument prints the error and `usage`
 * and exits 2.
 */
export function benchArgs<const O extends Options>(usage: string, options: O): Values<O> {
  let values: Values<O>;
  try {
    values = parseArgs<{ options: O & typeof HELP }>({ options: { ...options, ...HELP } }).values;
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${usage}`);
    process.exit(2);
  }
  if ((values as { help?: boolean }).help) {
    console.log(usage);
    process.exit(0);
  }
  return values;
}

/** A comma-separated list option: its items, trimmed, empty ones dropped. */
export function list(s: string): string[] {
  return s.split(',').map((x) => x.trim()).filter(Boolean);
}

/** Runs the bench's main; exits with its code, or with 1 after `cleanup` when it throws. */
export function runMain(main: () => Promise<number>, cleanup: () => void): void {
  main().then((code) => process.exit(code), (e: unknown) => {
    console.error(e);
    cleanup();
    process.exit(1);
  });
}
