import type { RequestListener } from 'node:http';
import type { FastifyServerOptions } from 'fastify';
import type { AppConfig } from '../config/app-config.js';
import type { ServerTls } from '../tls/server-tls.js';
import { clientErrorResponder } from './client-error-response.js';
import { createServingServer } from './connection-limits.js';
import type { SharedConnectionCount } from './shared-connection-cap.js';

/**
 * The serving port's Fastify options, the same for the main thread's app and for every ingress
 * thread's server. Slow clients: Node checks its headers and request timeouts only every
 * connectionsCheckingInterval (30 s by default), so the interval follows the timeouts; the headers
 * timeout cannot exceed the request's (Node refuses it). Connections, idle keep-alive and request
 * bytes in flight are bounded by the server itself (createServingServer); `sharedCount`: the count
 * the ingress threads share. `route` may answer a
 * request before Fastify does (an ingress thread forwards what it does not serve itself).
 */
export function servingFastifyOptions(
  config: AppConfig,
  tls: ServerTls,
  { maxConnections, sharedCount }: { maxConnections: number; sharedCount?: SharedConnectionCount },
  route: (fastify: RequestListener) => RequestListener = (fastify) => fastify,
): FastifyServerOptions & { serverFactory: (handler: RequestListener) => ReturnType<typeof createServingServer> } {
  const requestTimeout = config.HTTP_REQUEST_TIMEOUT_MS;
  const headersTimeout = Math.min(config.HTTP_HEADERS_TIMEOUT_MS, requestTimeout);
  const connectionLimits = { maxConnections, sharedCount, keepAliveTimeoutMs: config.HTTP_KEEP_ALIVE_TIMEOUT_MS, headersTimeoutMs: headersTimeout, requestTimeoutMs: requestTimeout };
  const bodyLimits = { maxRequestBytes: config.MAX_REQUEST_BYTES, maxBytesInFlight: config.MAX_REQUEST_BYTES_IN_FLIGHT };
  return {
    bodyLimit: config.MAX_REQUEST_BYTES,
    // maxParamLength: a model name may have 128 characters (Fastify's default cuts path parameters at 100).
    routerOptions: { maxParamLength: 256 },
    serverFactory: (handler: RequestListener) => createServingServer(connectionLimits, bodyLimits, route(handler), tls.httpsOptionsIfEnabled()),
    clientErrorHandler: clientErrorResponder({ headersTimeoutMs: headersTimeout, requestTimeoutMs: requestTimeout }),
  };
}
