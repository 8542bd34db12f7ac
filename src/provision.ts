// Provisioning (docs/cli.md): adding accounts one by one or a whole fleet from a
// file. Input is validated here, at the edge, with zod; the registry only ever
// receives well-formed accounts. Errors carry a stable code and one clear line.
import { randomBytes } from "node:crypto";
import { z } from "zod";
import { createCredentials } from "./auth/credentials.js";
import { NAME_PATTERN, RegistryError, type Account, type NewAccount, type Registry, type Role } from "./registry/registry.js";
import type { Logger } from "./log.js";
import { deviceTypeNames } from "../devices/index.js";

export class ProvisionError extends Error {
  constructor(
    readonly code: "SB_ERR_INPUT" | RegistryError["code"],
    message: string,
  ) {
    super(message);
  }
}

const name = z.string().regex(NAME_PATTERN, "must match [a-z0-9][a-z0-9._-]{0,63}");
const password = z.string().min(1, "must not be empty").max(1024, "is longer than 1024 characters");
const typeOf = (known: readonly string[]) =>
  z.string().refine((v) => known.includes(v), { error: (issue) => `unknown device type '${String(issue.input)}' (known: ${known.join(", ")})` });
const deviceType = typeOf(deviceTypeNames);
const personRole = z.enum(["service", "operator"], { error: "must be 'service' or 'operator'" });

const deviceRow = z.strictObject({ id: name, type: deviceType, password });
const accountRow = z.strictObject({ name, role: personRole, password });

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0]!;
  const key = issue.path.join(".");
  return key ? `${key}: ${issue.message.replace(/^Invalid input: /, "")}` : issue.message;
}

export const generatePassword = () => randomBytes(18).toString("base64url");

export interface ProvisionInput {
  name: string;
  role: Role;
  type: string | null;
  password?: string;
}

/** Validates one account and returns it with its password (generated when not given). */
export function checkAccount(input: ProvisionInput, knownTypes?: readonly string[]): { name: string; role: Role; type: string | null; password: string } {
  const pw = input.password ?? generatePassword();
  const devices = knownTypes ? deviceRow.extend({ type: typeOf(knownTypes) }) : deviceRow;
  const parsed =
    input.role === "device"
      ? devices.safeParse({ id: input.name, type: input.type ?? "", password: pw })
      : accountRow.safeParse({ name: input.name, role: input.role, password: pw });
  if (!parsed.success) throw new ProvisionError("SB_ERR_INPUT", firstIssue(parsed.error));
  return { name: input.name, role: input.role, type: input.role === "device" ? input.type : null, password: pw };
}

export async function addAccount(registry: Registry, input: ProvisionInput, iterations: number, knownTypes?: readonly string[]) {
  const account = checkAccount(input, knownTypes);
  if (registry.get(account.name)) throw new ProvisionError("SB_ERR_DUPLICATE", `'${account.name}' already exists`);
  const credentials = await createCredentials(account.password, iterations);
  try {
    await registry.add({ name: account.name, role: account.role, type: account.type, credentials });
  } catch (err) {
    if (err instanceof RegistryError) throw new ProvisionError(err.code, err.message);
    throw err;
  }
  return account;
}

/**
 * Parses an import file: CSV (`id,type,password` or, for accounts, `name,role,password`)
 * or JSON Lines with the same keys. A header line is allowed. Any bad row aborts the
 * whole import, naming its line.
 */
export function parseImport(text: string, kind: "devices" | "accounts"): Array<{ line: number; input: ProvisionInput }> {
  const rows: Array<{ line: number; input: ProvisionInput }> = [];
  const seen = new Map<string, number>();
  const header = kind === "devices" ? "id,type,password" : "name,role,password";
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, index) => {
    const line = index + 1;
    const trimmed = raw.trim();
    if (trimmed === "" || (rows.length === 0 && trimmed.replace(/\s/g, "") === header)) return;
    const fail = (reason: string): never => {
      throw new ProvisionError("SB_ERR_INPUT", `line ${line}: ${reason}`);
    };
    let record: Record<string, unknown>;
    if (trimmed.startsWith("{")) {
      try {
        record = JSON.parse(trimmed);
      } catch {
        return fail("not valid JSON");
      }
    } else {
      const cells = splitCsvLine(raw);
      if (!cells) return fail("unbalanced quotes");
      // An unquoted password may itself contain commas: everything after the second comma.
      if (cells.length < 3) fail(`expected ${header}`);
      const [a, b, ...rest] = cells as [string, string, ...string[]];
      record = kind === "devices" ? { id: a.trim(), type: b.trim(), password: rest.join(",") } : { name: a.trim(), role: b.trim(), password: rest.join(",") };
    }
    const parsed = (kind === "devices" ? deviceRow : accountRow).safeParse(record);
    if (!parsed.success) fail(firstIssue(parsed.error));
    const data = parsed.data as Record<string, string>;
    const id = kind === "devices" ? data.id! : data.name!;
    if (seen.has(id)) fail(`'${id}' already appears on line ${seen.get(id)}`);
    seen.set(id, line);
    rows.push({
      line,
      input: kind === "devices" ? { name: id, role: "device", type: data.type!, password: data.password! } : { name: id, role: data.role as Role, type: null, password: data.password! },
    });
  });
  return rows;
}

/** One CSV record (RFC 4180): fields may be quoted, `""` is a quote inside quotes. Null when unbalanced. */
export function splitCsvLine(line: string): string[] | null {
  const cells: string[] = [];
  let i = 0;
  for (;;) {
    if (line[i] === '"') {
      let value = "";
      i++;
      for (;;) {
        const q = line.indexOf('"', i);
        if (q < 0) return null;
        value += line.slice(i, q);
        if (line[q + 1] === '"') {
          value += '"';
          i = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      cells.push(value);
      if (i < line.length && line[i] !== ",") return null;
    } else {
      const comma = line.indexOf(",", i);
      cells.push(comma < 0 ? line.slice(i) : line.slice(i, comma));
      i = comma < 0 ? line.length : comma;
    }
    if (i >= line.length) return cells;
    i++; // the comma
  }
}

/** Imports all rows in one transaction; credentials are derived in parallel on the thread pool. */
export async function importAccounts(registry: Registry, rows: Array<{ line: number; input: ProvisionInput }>, iterations: number): Promise<number> {
  for (const { line, input } of rows)
    if (registry.get(input.name)) throw new ProvisionError("SB_ERR_DUPLICATE", `line ${line}: '${input.name}' already exists`);
  const accounts: NewAccount[] = new Array(rows.length);
  const batch = 64;
  for (let i = 0; i < rows.length; i += batch) {
    await Promise.all(
      rows.slice(i, i + batch).map(async ({ input }, j) => {
        accounts[i + j] = { name: input.name, role: input.role, type: input.type, credentials: await createCredentials(input.password!, iterations) };
      }),
    );
  }
  try {
    await registry.addMany(accounts);
  } catch (err) {
    if (err instanceof RegistryError) throw new ProvisionError(err.code, err.message);
    throw err;
  }
  return accounts.length;
}

/**
 * Creates a device of a known type met on a bridge (`autoProvision`): its account with
 * a generated password nobody knows (the bridge vouches for it), logged once.
 */
export function autoProvisioner(deps: { registry: Registry; iterations: number; types: ReadonlyArray<{ name: string }>; log: Pick<Logger, "info"> }) {
  const typeNames = deps.types.map((t) => t.name);
  return async (device: string, type: string, via: string): Promise<Account | undefined> => {
    try {
      const added = await addAccount(deps.registry, { name: device, role: "device", type }, deps.iterations, typeNames);
      deps.log.info({ bridge: via, device, type }, "device provisioned from a bridge");
      return deps.registry.get(added.name);
    } catch (err) {
      deps.log.info({ bridge: via, device, err: (err as Error).message }, "device not provisioned");
      return undefined;
    }
  };
}
