import type { z } from 'zod';
import { DomainError } from '../../domain/shared/domain-error.js';
import { assertJsonDepthWithin } from './json-depth.js';

/** A JSON body checked against a schema; the 400 names the field and what is wrong with it. */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  const parsed = schema.safeParse(body ?? undefined);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new DomainError('INFERENCE.INVALID_REQUEST', `${issue.path.join('.') || 'body'}: ${issue.message}`);
  }
  return parsed.data;
}

/**
 * A body that may come without a content type (Triton's clients send none): on a route marked
 * BINARY_TENSOR_BODY such a body arrives as bytes, parsed here as JSON (an empty one is absent).
 */
export function jsonOf(body: unknown, maxJsonDepth: number): unknown {
  if (!Buffer.isBuffer(body)) return body;
  if (body.length === 0) return undefined;
  assertJsonDepthWithin(body, maxJsonDepth);
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new DomainError('INFERENCE.INVALID_REQUEST', 'the body is not a JSON document');
  }
}
