// Wording of zod issues for the people who sent the input.
import type { z } from "zod";

/**
 * Whether an issue is about a value that is absent from the input ("required") rather
 * than present with the wrong type. zod 4 issues do not carry the input unless asked
 * to (`reportInput`), so it is looked up along the issue's path.
 */
export function isMissing(issue: z.core.$ZodIssue, input: unknown): boolean {
  if (issue.code !== "invalid_type") return false;
  let value = input;
  for (const key of issue.path) {
    if (value === null || typeof value !== "object") return true;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value === undefined;
}
