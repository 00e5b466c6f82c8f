import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { pipeline } from 'node:stream';
import { writeDomainError } from '../transport/error-response.filter.js';
import { DomainError } from '../../domain/shared/domain-error.js';
import { INGRESS_SAMPLED_HEADER } from '../tracing/ingress-sampling.js';

/**
 * Marks a request an ingress thread began to serve (and logged and counted) before handing it
 * over: the main thread does not log or count it again. A client's own is dropped.
 */
export const HANDED_OVER_HEADER = 'x-ingress-handed-over';

/** Where a forwarded request or call names its client's address (an HTTP header, gRPC metadata). */
export const FORWARDED_FOR = 'x-forwarded-for';

/** Hop-by-hop headers (RFC 9110 7.6.1): they concern one connection, and are not forwarded. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/**
 * Forwards an HTTP request an ingress thread does not serve itself (the admin API, metadata,
 * health, generation, shared memory...) to the main thread's own server, over its private Unix
 * socket, streaming both ways (Server-Sent Events arrive as they are written). The client's
 * address goes as the only `X-Forwarded-For` (a client's own is replaced, never trusted), so that
 * the main thread's rate limits and logs see the client. A client that goes away aborts the
 * forwarded request, which the main thread sees as its own client's disconnect.
 *
 * Hand-written over node:http rather than @fastify/reply-from: it runs before Fastify reads the
 * body (a forwarded body is never parsed twice, and the main thread applies its own limits), and
 * the request keeps its raw headers and stream.
 *
 * `sampled`: a new trace the thread drew sampled (INGRESS_SAMPLED_HEADER; a client's own is dropped).
 * `body`: the bytes already read (a request the thread began to serve, then handed over: it uses
 * shared memory, the main thread's); they replace the stream, decompressed, so Content-Encoding
 * and the length are set again, and {@link HANDED_OVER_HEADER} says it was logged already.
 */
export function forwardToMain(socketPath: string, req: IncomingMessage, res: ServerResponse, { body, sampled = false }: { body?: Buffer; sampled?: boolean } = {}): void {
  const headers: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(req.headers)) if (!HOP_BY_HOP.has(name) && name !== HANDED_OVER_HEADER && name !== INGRESS_SAMPLED_HEADER) headers[name] = value;
  if (sampled) headers[INGRESS_SAMPLED_HEADER] = '1';
  headers[FORWARDED_FOR] = req.socket.remoteAddress ?? '';
  headers['x-forwarded-proto'] = 'encrypted' in req.socket ? 'https' : 'http';
  if (body) {
    delete headers['content-encoding'];
    headers['content-length'] = String(body.length);
    headers[HANDED_OVER_HEADER] = '1';
  }
  const upstream = httpRequest({ socketPath, method: req.method, path: req.url, headers });
  upstream.on('response', (answer) => {
    const answerHeaders: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(answer.headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) answerHeaders[name] = value;
    res.writeHead(answer.statusCode ?? 502, answer.statusMessage, answerHeaders);
    // A Server-Sent Events stream: each event leaves as it arrives.
    res.flushHeaders();
    pipeline(answer, res, () => undefined);
  });
  upstream.on('error', () => {
    if (res.headersSent) res.destroy();
    else writeDomainError(res, new DomainError('SERVER.NOT_READY', 'the server is shutting down or restarting: retry', { retryAfterSeconds: 1 }));
  });
  res.once('close', () => {
    if (!res.writableFinished) upstream.destroy();
  });
  if (body) upstream.end(body);
  else pipeline(req, upstream, () => undefined);
}
