import type { FastifyInstance, RequestPayload } from 'fastify';
import { Transform, type Readable } from 'node:stream';
import { createUnzip, deflate, gzip } from 'node:zlib';
import { DomainError } from '../../domain/shared/domain-error.js';
import { BINARY_TENSOR_BODY, routeFlag } from './request-body-parsers.js';

/** The content codings the inference routes read and write, as Triton's HTTP server does. */
export type ContentCoding = 'gzip' | 'deflate';
const SUPPORTED = 'gzip, deflate';

export interface ContentCodingLimits {
  /** MAX_REQUEST_BYTES: a body's limit, compressed as sent and decompressed alike. */
  readonly maxRequestBytes: number;
}

/**
 * HTTP content codings on the inference routes ({@link BINARY_TENSOR_BODY}), as Triton's HTTP
 * server has them (tritonclient's `request_compression_algorithm` / `response_compression_algorithm`):
 * - a request with `Content-Encoding: gzip` or `deflate` is decompressed as it arrives (zlib
 *   detects either header, as Triton's inflate does); decompressed, it is held to
 *   MAX_REQUEST_BYTES too, and the inflate stops the moment it passes (a decompression bomb costs
 *   the limit, never what it would inflate to): `413`. Binary tensor data is read after it, and
 *   `Inference-Header-Content-Length` counts decompressed bytes. Any other coding is a `415`
 *   answering `Accept-Encoding: gzip, deflate` (RFC 7694); corrupt data a `400`.
 * - a successful answer is compressed when `Accept-Encoding` prefers gzip or deflate (Triton's
 *   choice: the highest q among identity, gzip and deflate; identity unless another is asked for),
 *   off the event loop; `Inference-Header-Content-Length` keeps counting uncompressed bytes.
 * Hand-written over node:zlib rather than @fastify/compress: that plugin stops reading a bomb at the
 * limit but keeps inflating it, and compresses by size and content type, not by Triton's rule.
 */
export function installContentCoding(fastify: FastifyInstance, limits: ContentCodingLimits): void {
  fastify.addHook('preParsing', (request, reply, payload, done) => {
    if (!routeFlag(request, BINARY_TENSOR_BODY)) return done(null, payload);
    const coding = requestCoding(request.headers['content-encoding']);
    if (coding === 'identity') return done(null, payload);
    if (coding === undefined) {
      void reply.header('accept-encoding', SUPPORTED);
      const sent = String(request.headers['content-encoding']).slice(0, 40);
      return done(new DomainError('CLIENT.UNSUPPORTED_CONTENT_ENCODING', `Content-Encoding '${sent}' is not supported: send the body as it is (identity), gzip or deflate`));
    }
    done(null, decompressed(payload, coding, limits.maxRequestBytes));
  });
  fastify.addHook('onSend', (request, reply, payload, done) => {
    const coding = reply.statusCode === 200 && routeFlag(request, BINARY_TENSOR_BODY) ? responseCoding(request.headers['accept-encoding']) : 'identity';
    if (coding === 'identity' || !(typeof payload === 'string' || Buffer.isBuffer(payload))) return done(null, payload);
    (coding === 'gzip' ? gzip : deflate)(payload, (error, compressed) => {
      // As Triton does, an answer that cannot be compressed goes as it is.
      if (error) return done(null, payload);
      void reply.header('content-encoding', coding);
      done(null, compressed);
    });
  });
}

/** The request's coding: identity (none), gzip, deflate, or undefined for any other. */
export function requestCoding(header: string | string[] | undefined): ContentCoding | 'identity' | undefined {
  const value = (Array.isArray(header) ? header.join(',') : (header ?? '')).trim().toLowerCase();
  if (value === '' || value === 'identity') return 'identity';
  return value === 'gzip' || value === 'deflate' ? value : undefined;
}

/**
 * The coding of an answer, from `Accept-Encoding`: among identity, gzip and deflate, the one with
 * the highest q (1 when absent), the first of equals; identity when none is above q=0. Other
 * codings, `*` included, are ignored (Triton's rule).
 */
export function responseCoding(header: string | undefined): ContentCoding | 'identity' {
  if (!header) return 'identity';
  let chosen: ContentCoding | 'identity' = 'identity';
  let weight = 0;
  for (const entry of header.split(',')) {
    const [name = '', ...params] = entry.split(';');
    const coding = name.trim().toLowerCase();
    if (coding !== 'identity' && coding !== 'gzip' && coding !== 'deflate') continue;
    const q = params.map((param) => param.trim()).find((param) => /^q=/i.test(param));
    const value = q === undefined ? 1 : Number(q.slice(2));
    if (Number.isFinite(value) && value > weight) {
      chosen = coding;
      weight = value;
    }
  }
  return chosen;
}

/**
 * The decompressed body, as Fastify reads it: its `receivedEncodedLength` counts the bytes received
 * (Fastify checks them against Content-Length and MAX_REQUEST_BYTES), and it fails with a 413 as
 * soon as the decompressed bytes pass the limit, the inflate then stopped and released.
 */
function decompressed(raw: RequestPayload, coding: ContentCoding, limit: number): Readable {
  const inflate = createUnzip();
  let decodedBytes = 0;
  const body = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      decodedBytes += chunk.length;
      if (decodedBytes <= limit) return callback(null, chunk);
      callback(
        new DomainError(
          'CLIENT.BODY_TOO_LARGE',
          `decompressed (Content-Encoding: ${coding}), the request body is larger than the limit of ${limit} bytes (MAX_REQUEST_BYTES)`,
        ),
      );
    },
  }) as Transform & { receivedEncodedLength: number };
  body.receivedEncodedLength = 0;
  raw.on('data', (chunk: Buffer) => {
    body.receivedEncodedLength += chunk.length;
  });
  raw.on('error', (error) => body.destroy(error));
  inflate.on('error', (error) => body.destroy(new DomainError('INFERENCE.INVALID_REQUEST', `the body is not valid ${coding} data (Content-Encoding: ${coding}): ${error.message}`)));
  body.on('close', () => inflate.destroy());
  raw.pipe(inflate).pipe(body);
  return body;
}
