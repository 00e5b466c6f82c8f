import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Logger } from '@nestjs/common';
import type { FastifyInstance } from 'fastify';
import { DomainError } from '../../domain/shared/domain-error.js';
import { bindFailure, type AppConfig } from '../config/app-config.js';
import type { ServerTls } from '../tls/server-tls.js';
import { createLimitedServer, type Server } from './connection-limits.js';

/**
 * The admin API's routes, by their template (Fastify's, never the raw path, so that no spelling of
 * a path escapes it): this server's own (/admin/...) and Triton's model repository extension
 * (/v2/repository/...). Every route of the admin API lives under one of them (the controllers
 * guarded by AdminAuthGuard, and the admin OpenAPI document; test/e2e/admin-port.e2e.test.ts walks
 * that document).
 */
const ADMIN_ROUTE = /^\/(?:admin|v2\/repository)(?:\/|$)/;

/** Whether a route (its template; undefined when nothing matched) belongs to the admin API. */
function isAdminRoute(template: string | undefined): boolean {
  return template !== undefined && ADMIN_ROUTE.test(template);
}

const viaAdminPort = Symbol('viaAdminPort');
type AdminPortRequest = IncomingMessage & { [viaAdminPort]?: true };

/**
 * ADMIN_PORT: the admin API on a port of its own, so that a Service and a NetworkPolicy can keep it
 * off the public one (README "Admin port"). Unset, nothing changes: the admin API is
 * served on HTTP_PORT with the rest.
 *
 * The admin port is a second door into the serving port's server, not a second app: each request
 * it accepts is handed to the serving server's own `request` (or `checkContinue`) listeners, so it
 * goes through the same budget of request bytes in flight (MAX_REQUEST_BYTES_IN_FLIGHT, one budget
 * for both ports), the same Fastify routing, hooks, guards (ADMIN_TOKEN, ADMIN_AUTH), body limits,
 * error filter, access log and HTTP metrics. Its own server brings what is per port: TLS (the same
 * certificate, reloaded alike, and the same TLS_CLIENT_AUTH), the slow-client timeouts of
 * HTTP_HEADERS_TIMEOUT_MS and HTTP_REQUEST_TIMEOUT_MS, HTTP_KEEP_ALIVE_TIMEOUT_MS, and its own cap
 * on connections (ADMIN_MAX_CONNECTIONS), so that public clients holding HTTP_MAX_CONNECTIONS never
 * lock operators out. Client errors (bad HTTP, slow headers) are answered by the serving port's
 * handler.
 *
 * Each route answers on its port only: the serving port refuses the admin API with 403
 * (AUTH.ADMIN_PORT_ONLY, as Triton's --http-restricted-api refuses a restricted API), before the
 * body is read; the admin port answers any other route with 404 (SERVER.NOT_ON_ADMIN_PORT). The
 * gRPC port's repository methods are refused alike (AdminAuthGuard).
 */
export class AdminListener {
  private readonly logger = new Logger('Server');
  private server?: Server;
  private closed?: Promise<void>;

  constructor(private readonly config: AppConfig) {}

  /**
   * Before the app is ready: the hook that keeps each route on its port, and the admin port's
   * close with the app's (it stops accepting when the serving port does; the app's close waits
   * for its requests in progress).
   */
  install(fastify: FastifyInstance): void {
    if (this.config.ADMIN_PORT === undefined) return;
    fastify.addHook('onRequest', (request, reply, done) => {
      const template = request.routeOptions.url;
      // Nothing matched: Fastify's 404 on either port.
      if (template === undefined) return done();
      const onAdminPort = (request.raw as AdminPortRequest)[viaAdminPort] === true;
      const admin = isAdminRoute(template);
      if (admin === onAdminPort) return done();
      // The body (an upload, maybe) is not read: the connection cannot carry another request after it.
      if (request.headers['content-length'] !== undefined || request.headers['transfer-encoding'] !== undefined) void reply.header('connection', 'close');
      done(
        admin
          ? new DomainError('AUTH.ADMIN_PORT_ONLY', 'the admin API is served on the admin port only (ADMIN_PORT), not on this one')
          : new DomainError('SERVER.NOT_ON_ADMIN_PORT', 'this is the admin port (ADMIN_PORT): it serves the admin API only (/admin/..., /v2/repository/...); inference, health and metadata are on HTTP_PORT'),
      );
    });
    fastify.addHook('preClose', async () => {
      if (!this.server) return;
      const server = this.server;
      this.closed = new Promise<void>((resolve) => server.close(() => resolve()));
    });
    fastify.addHook('onClose', async () => {
      // Keep-alive connections that went idle since the close began.
      this.server?.closeIdleConnections();
      await this.closed;
    });
  }

  /**
   * After the serving port listens: the admin port listens (with ADMIN_PORT; nothing without). A
   * port that cannot be bound is a configuration error naming ADMIN_PORT.
   */
  async listen(serving: Server, tls: ServerTls): Promise<void> {
    if (this.config.ADMIN_PORT === undefined) return;
    const handOver = (event: 'request' | 'checkContinue') => (req: AdminPortRequest, res: ServerResponse) => {
      req[viaAdminPort] = true;
      serving.emit(event, req, res);
    };
    const server = createLimitedServer(
      {
        maxConnections: this.config.ADMIN_MAX_CONNECTIONS,
        keepAliveTimeoutMs: this.config.HTTP_KEEP_ALIVE_TIMEOUT_MS,
        headersTimeoutMs: this.config.HTTP_HEADERS_TIMEOUT_MS,
        requestTimeoutMs: this.config.HTTP_REQUEST_TIMEOUT_MS,
      },
      handOver('request'),
      tls.httpsOptionsIfEnabled(),
    );
    // Answered by the serving port's listener ("100 Continue", or its refusal), which then hands the request to routing.
    server.on('checkContinue', handOver('checkContinue'));
    for (const listener of serving.listeners('clientError')) server.on('clientError', listener as (...args: unknown[]) => void);
    tls.serve(server);
    const listening = once(server, 'listening');
    server.listen(this.config.ADMIN_PORT, this.config.HOST);
    await listening.catch((error: unknown) => {
      throw bindFailure('ADMIN_PORT', this.config, error);
    });
    this.server = server;
    this.logger.log(`admin API on port ${this.port} (ADMIN_PORT) only: HTTP_PORT and GRPC_PORT refuse it`);
  }

  /** The admin port bound (ADMIN_PORT, or the one chosen when it is 0); undefined when it does not listen. */
  get port(): number | undefined {
    const address = this.server?.address();
    return typeof address === 'object' && address ? address.port : undefined;
  }
}
