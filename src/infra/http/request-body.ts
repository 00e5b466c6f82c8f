import { Injectable, type PipeTransform } from '@nestjs/common';
import type { z } from 'zod';
import { DomainError } from '../../domain/shared/domain-error.js';
import { AppConfig } from '../config/app-config.js';
import { schemaErrorMessage } from '../validation/schema-error-message.js';
import { parseJsonBody } from './json-body.js';

/** Whose body it is: the admin API's, or an inference extension's (shared memory). */
export type BodyErrorCode = 'ADMIN.INVALID_REQUEST' | 'INFERENCE.INVALID_REQUEST';

/** A JSON body checked against a schema; the 400 (with `code`) names the field and what is wrong with it. */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown, code: BodyErrorCode): z.infer<T> {
  const parsed = schema.safeParse(body ?? undefined);
  if (!parsed.success) throw new DomainError(code, schemaErrorMessage(parsed.error, { root: 'body' }));
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
 * `@Body(JsonBody)` on a {@link BODY_AFTER_GUARDS} route (the admin API's): the body's bytes parsed
 * as JSON (within MAX_JSON_DEPTH), once the guards have let the request through (Nest runs pipes
 * after guards). An empty body is `{}`, as in Triton. A body that is not JSON, or nests too deep,
 * is an ADMIN.INVALID_REQUEST.
 */
@Injectable()
export class JsonBody implements PipeTransform<unknown, unknown> {
  constructor(private readonly config: AppConfig) {}

  transform(body: unknown): unknown {
    if (!Buffer.isBuffer(body)) return body ?? {};
    try {
      return parseJsonBody(body, this.config.MAX_JSON_DEPTH) ?? {};
    } catch (error) {
      throw error instanceof DomainError ? new DomainError('ADMIN.INVALID_REQUEST', error.message) : error;
    }
  }
}
