// Where `device add` and `account add` take a password from. `--password P` is
// visible to every local user in `ps` and stays in shell history; standard input
// (`--password-stdin`) and the environment (`SWITCHBOARD_PASSWORD`) are not.
export class PasswordInputError extends Error {}

export const PASSWORD_ENV = "SWITCHBOARD_PASSWORD";

/** Enough for any password the provisioning check accepts (1024 characters) to be seen as too long. */
const MAX_LINE = 4096;

export interface PasswordSources {
  /** `--password P` */
  flag?: string;
  /** `--password-stdin` */
  stdin?: boolean;
  /** The environment variable's value, when it is set. */
  env?: string;
  input: NodeJS.ReadableStream;
}

/** The password the user gave, or undefined when none was (one is then generated). */
export async function givenPassword(s: PasswordSources): Promise<string | undefined> {
  const ways = [s.flag !== undefined && "--password", s.stdin && "--password-stdin", s.env !== undefined && PASSWORD_ENV].filter((w): w is string => !!w);
  if (ways.length > 1) throw new PasswordInputError(`give the password one way only, not ${ways.join(" and ")}`);
  if (s.stdin) {
    const line = await firstLine(s.input);
    if (line === "") throw new PasswordInputError("--password-stdin: standard input gave an empty password");
    return line;
  }
  if (s.env === "") throw new PasswordInputError(`${PASSWORD_ENV} is set but empty`);
  return s.env ?? s.flag;
}

/**
 * The first line of `input`, its line break (LF or CRLF) removed. Reading stops at
 * the line break, so a password typed at a terminal needs no end-of-file.
 */
async function firstLine(input: NodeJS.ReadableStream): Promise<string> {
  input.setEncoding("utf8");
  let text = "";
  for await (const chunk of input as AsyncIterable<string>) {
    text += chunk;
    const end = text.indexOf("\n");
    if (end >= 0) {
      text = text.slice(0, end);
      break;
    }
    if (text.length > MAX_LINE) break;
  }
  return text.slice(0, MAX_LINE).replace(/\r$/, "");
}
