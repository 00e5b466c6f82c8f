import type { z } from 'zod';
import { DomainError } from '../../domain/shared/domain-error.js';

/** A JSON body checked against a schema; the 400 names the field and what is wrong with it. */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  const parsed = schema.safeParse(body ?? undefined);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new DomainError('INFERENCE.INVALID_REQUEST', `${issue.path.join('.') || 'body'}: ${issue.message}`);
  }
  return parsed.data;
}
