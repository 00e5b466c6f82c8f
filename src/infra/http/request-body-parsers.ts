import type { FastifyAdapter } from '@nestjs/platform-fastify';
import type { FastifyRequest } from 'fastify';
import { parseJsonBody } from './json-body.js';

/**
 * The route config key (Nest's `@RouteConfig`) of the inference routes, whose body may carry binary
 * tensor data: it is read as bytes, whatever its content type (JSON included: the route reads it as
 * tritonclient writes it, json-body.ts), may be compressed (content-coding.ts), and the route
 * decodes it.
 */
export const BINARY_TENSOR_BODY = 'binaryTensorBody';

/**
 * The route config key of the routes whose guards judge the request before its body is: the body
 * is read as bytes whatever its content type (none, `application/octet-stream` as tritonclient's
 * http.aio sends, JSON...), so reading it refuses nothing but its size; the route parses it after
 * its guards ({@link JsonBody}). A request without a valid admin token is a 401 whatever its body.
 */
export const BODY_AFTER_GUARDS = 'bodyAfterGuards';

export interface BodyLimits {
  /** MAX_JSON_DEPTH: how deep a JSON body may nest arrays and objects. */
  readonly maxJsonDepth: number;
}

/**
 * How request bodies are read, before any route sees them (the size limit is Fastify's
 * `bodyLimit`, MAX_REQUEST_BYTES):
 * - `application/json`: refused with 400 when it nests deeper than MAX_JSON_DEPTH, before it is parsed;
 * - `application/octet-stream`: the bytes (model uploads; binary inference bodies);
 * - on {@link BINARY_TENSOR_BODY} and {@link BODY_AFTER_GUARDS} routes, any body is read as bytes
 *   (the infer routes scan and parse theirs themselves: infer-json-scan.ts).
 *   Triton reads its bodies this way: its clients send no content type, or octet-stream.
 */
export function installRequestBodyParsers(adapter: FastifyAdapter, limits: BodyLimits): void {
  const fastify = adapter.getInstance();
  fastify.addHook('onRequest', (request, _reply, done) => {
    if (routeFlag(request, BINARY_TENSOR_BODY) || routeFlag(request, BODY_AFTER_GUARDS)) request.headers['content-type'] = 'application/octet-stream';
    done();
  });
  // Through the adapter, so that Nest does not add its own JSON parser next to this one.
  adapter.useBodyParser('application/json', false, undefined, (_request, body, done) => {
    try {
      done(null, parseJsonBody(body as unknown as Buffer, limits.maxJsonDepth));
    } catch (error) {
      done(error as Error);
    }
  });
  fastify.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
}

/** Whether a route's config (`@RouteConfig`) sets a flag. */
export function routeFlag(request: FastifyRequest, key: string): boolean {
  return (request.routeOptions.config as unknown as Record<string, unknown> | undefined)?.[key] === true;
}
