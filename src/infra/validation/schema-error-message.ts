import type { z } from 'zod';

/** How {@link schemaErrorMessage} words a zod error. */
export interface IssueWording {
  /** Where an issue is (default: its path joined with dots, {@link IssueWording.root} for the value itself). */
  readonly at?: (issue: z.core.$ZodIssue) => string;
  /** The name of the value itself, for an issue at the root (default `(root)`). */
  readonly root?: string;
  /** Every issue, joined with `; ` (default: the first one only). */
  readonly every?: boolean;
}

/**
 * A value refused by its zod schema, as one message: `<where>: <what is wrong>` for its first
 * issue (or for each one). Every reader of a schema-checked input (a request body, a config file,
 * the environment, a state file) words its refusal with it.
 */
export function schemaErrorMessage(error: { readonly issues: readonly z.core.$ZodIssue[] }, wording: IssueWording = {}): string {
  const at = wording.at ?? ((issue: z.core.$ZodIssue) => issue.path.map(String).join('.') || (wording.root ?? '(root)'));
  const issues = wording.every ? error.issues : error.issues.slice(0, 1);
  return issues.map((issue) => `${at(issue)}: ${issue.message}`).join('; ');
}
