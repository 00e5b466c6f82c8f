import type { FastifyAdapter } from '@nestjs/platform-fastify';
import type { FastifyRequest } from 'fastify';
import { INFERENCE_HEADER_CONTENT_LENGTH } from './binary-tensor.codec.js';
import { assertJsonDepthWithin } from './json-depth.js';

/**
 * The route config key (Nest's `@RouteConfig`) of routes whose body may carry binary tensor data:
 * such a body is read as bytes, whatever its content type, and the route decodes it.
 */
export const BINARY_TENSOR_BODY = 'binaryTensorBody';

/**
 * The route config key of routes that read their JSON bodies themselves (the infer route scans
 * one before parsing it: infer-json-scan.ts): every body, JSON included, reaches them as bytes.
 */
export const SCANNED_JSON_BODY = 'scannedJsonBody';

export interface BodyLimits {
  /** MAX_JSON_DEPTH: how deep a JSON body may nest arrays and objects. */
  readonly maxJsonDepth: number;
}

/**
 * How request bodies are read, before any route sees them (the size limit is Fastify's
 * `bodyLimit`, MAX_REQUEST_BYTES):
 * - `application/json`: refused with 400 when it nests deeper than MAX_JSON_DEPTH, before it is parsed;
 * - `application/octet-stream`: the bytes (model uploads; binary inference bodies);
 * - on {@link BINARY_TENSOR_BODY} routes, a body announced by `Inference-Header-Content-Length`,
 *   or one whose content type is not JSON (absent, octet-stream, anything), is read as bytes.
 *   Triton reads inference bodies this way: its clients send no content type, or octet-stream;
 * - on {@link SCANNED_JSON_BODY} routes, every body is read as bytes.
 */
export function installRequestBodyParsers(adapter: FastifyAdapter, limits: BodyLimits): void {
  const fastify = adapter.getInstance();
  fastify.addHook('onRequest', (request, _reply, done) => {
    if (readsAsBytes(request)) request.headers['content-type'] = 'application/octet-stream';
    done();
  });
  const parseJson = fastify.getDefaultJsonParser('error', 'error');
  // Through the adapter, so that Nest does not add its own JSON parser next to this one.
  adapter.useBodyParser('application/json', false, undefined, (request, body, done) => {
    assertJsonDepthWithin(body, limits.maxJsonDepth);
    // Fastify's own parser (prototype-poisoning checks included); it takes bytes as well as text.
    parseJson(request, body as unknown as string, done);
  });
  fastify.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
}

function readsAsBytes(request: FastifyRequest): boolean {
  const config = request.routeOptions.config as unknown as Record<string, unknown> | undefined;
  if (config?.[SCANNED_JSON_BODY] === true) return true;
  if (config?.[BINARY_TENSOR_BODY] !== true) return false;
  if (request.headers[INFERENCE_HEADER_CONTENT_LENGTH] !== undefined) return true;
  return !/^\s*application\/json\s*(;|$)/i.test(request.headers['content-type'] ?? '');
}
