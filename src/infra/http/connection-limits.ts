import { capConnectionsAcrossThreads, type SharedConnectionCount } from './shared-connection-cap.js';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { createServer, type IncomingMessage, type RequestListener, type Server as HttpServer, type ServerOptions, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer, type ServerOptions as HttpsServerOptions } from 'node:https';

/** The HTTP servers of the process: plaintext, or HTTPS with TLS on (ServerTls). */
export type Server = HttpServer | HttpsServer;
import { DomainError } from '../../domain/shared/domain-error.js';
import { requestTooLarge, writeDomainError } from '../transport/error-response.filter.js';

/** How long and how many: what every HTTP server of the process (serving and metrics ports) holds at most. */
export interface ConnectionLimits {
  /** Open connections; past it Node closes a new one as soon as it is accepted. */
  readonly maxConnections: number;
  /** The count the servers of every ingress thread share (then `maxConnections` bounds them together). */
  readonly sharedCount?: SharedConnectionCount;
  /** HTTP_KEEP_ALIVE_TIMEOUT_MS: an idle keep-alive connection is closed after it. */
  readonly keepAliveTimeoutMs: number;
  /** HTTP_HEADERS_TIMEOUT_MS (at most the request timeout). */
  readonly headersTimeoutMs: number;
  /** HTTP_REQUEST_TIMEOUT_MS */
  readonly requestTimeoutMs: number;
}

/** What the serving port holds of request bodies. */
export interface BodyLimits {
  /** MAX_REQUEST_BYTES: one body. */
  readonly maxRequestBytes: number;
  /** MAX_REQUEST_BYTES_IN_FLIGHT: the bodies of every request in progress, together. */
  readonly maxBytesInFlight: number;
}

/**
 * A node:http server that bounds what clients hold: connections (`maxConnections`, kept below the
 * process's descriptor limit), idle keep-alive connections, connections that send nothing (closed
 * after the headers timeout), slow headers and bodies (Node checks
 * its timeouts every `connectionsCheckingInterval`, 30 s by default: here half the headers
 * timeout, at most 1 s). Fastify's `serverFactory` builds the serving port's with it; the metrics
 * port's too.
 */
export function createLimitedServer(limits: ConnectionLimits, listener?: RequestListener, tls?: HttpsServerOptions): Server {
  const headersTimeout = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);
  const options: ServerOptions = {
    headersTimeout,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionsCheckingInterval: Math.min(1000, Math.ceil(headersTimeout / 2)),
  };
  // HTTPS: a client must finish its handshake within the headers timeout too.
  const server: Server = tls ? createHttpsServer({ ...options, ...tls, handshakeTimeout: headersTimeout }, listener) : listener ? createServer(options, listener) : createServer(options);
  if (limits.sharedCount) capConnectionsAcrossThreads(server, limits.sharedCount, limits.maxConnections);
  else server.maxConnections = limits.maxConnections;
  // Node's headers timeout counts from a request's first byte: a connection that never sends one
  // would be held for ever. Silent that long, it is closed (Node destroys a socket on its timeout);
  // once a request arrives the socket's timeout is cleared (the request timeouts and the
  // keep-alive timeout take over: a long inference sends nothing and must not be cut).
  // (Over TLS the socket that serves requests is the TLS one, made after the handshake.)
  server.on(tls ? 'secureConnection' : 'connection', (socket: Socket) => socket.setTimeout(headersTimeout));
  server.prependListener('request', (req: IncomingMessage) => req.socket.setTimeout(0));
  server.prependListener('checkContinue', (req: IncomingMessage) => req.socket.setTimeout(0));
  return server;
}

const reserved = Symbol('reservedBodyBytes');
type BudgetedRequest = IncomingMessage & { [reserved]?: number };

/**
 * The serving port's server: {@link createLimitedServer}, plus a budget of request-body bytes
 * across every connection. A request reserves its Content-Length (a body without one, chunked, may
 * grow to MAX_REQUEST_BYTES: it reserves that) until its answer is sent or its connection closes;
 * one that would take the total past MAX_REQUEST_BYTES_IN_FLIGHT is answered 503 with Retry-After
 * before its body is read. Requests without a body reserve nothing, so health checks always pass.
 * `Expect: 100-continue` is answered before the body is invited: 413 when Content-Length is over
 * MAX_REQUEST_BYTES, 503 when the budget is spent, else "100 Continue" (Node's default invites
 * every body).
 */
export function createServingServer(limits: ConnectionLimits, body: BodyLimits, handler: RequestListener, tls?: HttpsServerOptions): Server {
  let inFlight = 0;
  const declaredLength = (req: IncomingMessage): number | undefined => {
    const header = req.headers['content-length'];
    return header === undefined ? undefined : Number(header);
  };
  const refuse = (res: ServerResponse, error: DomainError) => {
    // The body is not read: the connection cannot carry another request after it.
    res.setHeader('connection', 'close');
    writeDomainError(res, error);
  };
  /** Reserves the request's bytes, or answers the refusal; true when it may go on. */
  const admit = (req: BudgetedRequest, res: ServerResponse): boolean => {
    if (req[reserved] !== undefined) return true;
    const length = declaredLength(req);
    const bytes = length ?? (req.headers['transfer-encoding'] ? body.maxRequestBytes : 0);
    if (bytes > 0 && inFlight + bytes > body.maxBytesInFlight) {
      refuse(
        res,
        new DomainError(
          'SERVER.OVERLOADED',
          `the server holds its limit of request bodies in progress (MAX_REQUEST_BYTES_IN_FLIGHT, ${body.maxBytesInFlight} bytes); this one (${bytes} bytes) must wait: retry in a moment`,
          { retryAfterSeconds: 1 },
        ),
      );
      return false;
    }
    req[reserved] = bytes;
    inFlight += bytes;
    if (bytes > 0) res.once('close', () => (inFlight -= bytes));
    return true;
  };
  const server = createLimitedServer(limits, (req, res) => {
    if (admit(req, res)) handler(req, res);
  }, tls);
  server.on('checkContinue', (req: BudgetedRequest, res: ServerResponse) => {
    const length = declaredLength(req);
    if (length !== undefined && length > body.maxRequestBytes) {
      refuse(res, requestTooLarge(body.maxRequestBytes));
      return;
    }
    if (!admit(req, res)) return;
    res.writeContinue();
    // As if Node had invited the body itself: every 'request' listener (metrics too) sees it.
    server.emit('request', req, res);
  });
  return server;
}

/** Descriptors kept for what is not a client connection: model files, worker threads, logs, the state directory. */
const RESERVED_DESCRIPTORS = 128;

/**
 * The connection caps: HTTP_MAX_CONNECTIONS and GRPC_MAX_CONNECTIONS when set, else derived from
 * the process's open-file limit (`ulimit -n`, read from /proc/self/limits; 1024 where it cannot be
 * read): half of it (less 128 reserved) for HTTP, a quarter for gRPC, at most 10,000 and 5,000, so
 * that clients can never take the last descriptor from the metrics port, the models and the logs.
 */
export function connectionCaps(configured: { readonly http: number; readonly grpc: number }, openFiles: number = openFileLimit()): { http: number; grpc: number } {
  const usable = Math.max(64, openFiles - RESERVED_DESCRIPTORS);
  return {
    http: configured.http || Math.min(10_000, Math.max(16, Math.floor(usable / 2))),
    grpc: configured.grpc || Math.min(5000, Math.max(8, Math.floor(usable / 4))),
  };
}

/** The soft limit on open files of this process (Linux), or 1024 when it cannot be read. */
function openFileLimit(): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
    const value = soft === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(soft);
    return Number.isFinite(value) && value > 0 ? value : 1024;
  } catch {
    return 1024;
  }
}
