import 'reflect-metadata';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Logger } from 'nestjs-pino';
import { AppModule, type AppOverrides } from './app.module.js';
import type { AppConfig } from './infra/config/app-config.js';
import { grpcServerOptions } from './infra/grpc/grpc-options.js';
import { clientErrorResponder } from './infra/http/client-error-response.js';
import { installContentCoding } from './infra/http/content-coding.js';
import { installRequestBodyParsers } from './infra/http/request-body-parsers.js';
import { ErrorResponseFilter } from './infra/transport/error-response.filter.js';
import { HttpMetrics } from './modules/observability/metrics/http-metrics.js';
import { MetricsServer } from './modules/observability/metrics/metrics-server.js';
import { ServerReadiness } from './modules/health/server-readiness.js';
import { LoadModelRepositoryHandler } from './modules/registry/load-model-repository/load-model-repository.handler.js';

const routeOf = Symbol('route');

export interface RunningServer {
  readonly app: NestFastifyApplication;
  /** The HTTP address actually bound (the port may have been 0). */
  readonly httpUrl: string;
  /** The gRPC address, `host:port` (GRPC_PORT as configured). */
  readonly grpcAddress: string;
  /** Where Prometheus scrapes, `http://host:port/metrics` (the port actually bound); undefined with ALLOW_METRICS=false. */
  readonly metricsUrl?: string;
  /** Settles when the model repository has been loaded (each model READY or UNAVAILABLE). */
  readonly modelsLoaded: Promise<void>;
  /**
   * The graceful shutdown (what SIGTERM starts): not ready at once, serving on for
   * SHUTDOWN_DRAIN_DELAY_MS (load balancers remove the endpoint meanwhile), then every queued and
   * running request answered, the servers closed (idle keep-alive connections too), sessions released.
   */
  shutdown(): Promise<void>;
}

/**
 * Builds and starts the server, HTTP and gRPC in one process: it listens first (live at once) and
 * loads the model repository after, so probes see "live, not yet ready" while models load.
 */
export async function startServer(config: AppConfig, overrides: AppOverrides = {}): Promise<RunningServer> {
  // Slow clients: Node checks its headers and request timeouts only every connectionsCheckingInterval
  // (30 s by default), so the interval follows the timeouts; the headers timeout cannot exceed the
  // request's (Node refuses it).
  const requestTimeout = config.HTTP_REQUEST_TIMEOUT_MS;
  const headersTimeout = Math.min(config.HTTP_HEADERS_TIMEOUT_MS, requestTimeout);
  const adapter = new FastifyAdapter({
    bodyLimit: config.MAX_REQUEST_BYTES,
    // maxParamLength: a model name may have 128 characters (Fastify's default cuts path parameters at 100).
    routerOptions: { maxParamLength: 256 },
    requestTimeout,
    http: { headersTimeout, requestTimeout, connectionsCheckingInterval: Math.min(1000, Math.ceil(headersTimeout / 2)) },
    clientErrorHandler: clientErrorResponder({ headersTimeoutMs: headersTimeout, requestTimeoutMs: requestTimeout }),
  });
  // The route template is noted first thing (before Nest's middleware, which may answer early).
  adapter.getInstance().addHook('onRequest', (request, _reply, done) => {
    (request.raw as IncomingMessage & { [routeOf]?: string })[routeOf] = request.routeOptions.url;
    done();
  });
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.with(config, overrides), adapter, { bufferLogs: true });
  app.useLogger(app.get(Logger));
  // Every HTTP answer is counted by its route template (Fastify's), never by its raw path; counted
  // on the raw response, so that what Fastify answers before routing (a bad URL) counts too.
  const httpMetrics = app.get(HttpMetrics);
  app.getHttpServer().on('request', (req: IncomingMessage & { [routeOf]?: string }, res: ServerResponse) => {
    const started = performance.now();
    res.once('finish', () => httpMetrics.answered(req.method ?? '', req[routeOf], res.statusCode, performance.now() - started));
  });
  // JSON within MAX_JSON_DEPTH; raw bytes for model uploads and binary tensor data.
  installRequestBodyParsers(adapter, { maxJsonDepth: config.MAX_JSON_DEPTH });
  // gzip/deflate request bodies and answers on the inference routes, as Triton's HTTP server.
  installContentCoding(adapter, { maxRequestBytes: config.MAX_REQUEST_BYTES });
  app.useGlobalFilters(new ErrorResponseFilter({ maxRequestBytes: config.MAX_REQUEST_BYTES }));
  // The gRPC server shares the modules, the global error filter and the guards of the HTTP app.
  app.connectMicroservice(grpcServerOptions(config), { inheritAppConfig: true });
  await app.startAllMicroservices();
  await app.listen({ port: config.HTTP_PORT, host: config.HOST });
  const address = app.getHttpServer().address();
  const port = typeof address === 'object' && address ? address.port : config.HTTP_PORT;
  const host = config.HOST === '0.0.0.0' || config.HOST === '::' ? '127.0.0.1' : config.HOST;
  const httpUrl = `http://${host}:${port}`;
  const grpcAddress = `${host.includes(':') ? `[${host}]` : host}:${config.GRPC_PORT}`;
  const metricsUrl = config.ALLOW_METRICS ? `http://${host.includes(':') ? `[${host}]` : host}:${app.get(MetricsServer).port}/metrics` : undefined;
  app.get(Logger).log(`serving HTTP on ${httpUrl}, gRPC on ${grpcAddress}, metrics ${metricsUrl ? `on ${metricsUrl}` : 'off (ALLOW_METRICS=false)'}`, 'Server');
  const modelsLoaded = app.get(LoadModelRepositoryHandler).execute();
  const shutdown = async () => {
    app.get(ServerReadiness).beginShutdown();
    app.get(Logger).log(`shutting down: not ready; serving on for ${config.SHUTDOWN_DRAIN_DELAY_MS} ms, then draining`, 'Server');
    await sleep(config.SHUTDOWN_DRAIN_DELAY_MS);
    await app.close();
  };
  return { app, httpUrl, grpcAddress, metricsUrl, modelsLoaded, shutdown };
}
