import { Injectable, type PipeTransform } from '@nestjs/common';
import type { z } from 'zod';
import { DomainError } from '../../domain/shared/domain-error.js';
import { AppConfig } from '../config/app-config.js';
import { parseJsonBody } from './json-body.js';

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
  return Buffer.isBuffer(body) ? parseJsonBody(body, maxJsonDepth) : body;
}

/**
 * `@Body(JsonBody)` on a {@link BODY_AFTER_GUARDS} route: the body's bytes parsed as JSON (within
 * MAX_JSON_DEPTH), once the guards have let the request through (Nest runs pipes after guards). An
 * empty body is `{}`, as in Triton.
 */
@Injectable()
export class JsonBody implements PipeTransform<unknown, unknown> {
  constructor(private readonly config: AppConfig) {}

  transform(body: unknown): unknown {
    if (!Buffer.isBuffer(body)) return body ?? {};
    return parseJsonBody(body, this.config.MAX_JSON_DEPTH) ?? {};
  }
}
