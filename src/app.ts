import 'reflect-metadata';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Logger } from 'nestjs-pino';
import { AppModule, type AppOverrides } from './app.module.js';
import { bindFailure, checkModelRepository, withAdminTokenFile, type AppConfig } from './infra/config/app-config.js';
import { GrpcConnectionCap } from './infra/grpc/grpc-connection-cap.js';
import { grpcServerOptions } from './infra/grpc/grpc-options.js';
import { InferenceGrpcServer } from './infra/grpc/inference-grpc-server.js';
import { AdminListener } from './infra/http/admin-listener.js';
import { noteRouteTemplates, whenAnswered } from './infra/http/answer-counting.js';
import { connectionCaps } from './infra/http/connection-limits.js';
import { servingFastifyOptions } from './infra/http/serving-fastify-options.js';
import { HANDED_OVER_HEADER } from './infra/ingress/forward-to-main.js';
import { IngressRequests, IngressThreads } from './infra/ingress/ingress-threads.js';
import { Tracing } from './infra/tracing/tracing.js';
import { installContentCoding } from './infra/http/content-coding.js';
import { installRequestBodyParsers } from './infra/http/request-body-parsers.js';
import { ServerTls } from './infra/tls/server-tls.js';
import { ErrorResponseFilter } from './infra/transport/error-response.filter.js';
import { HttpMetrics } from './modules/observability/metrics/http-metrics.js';
import { MetricsServer } from './modules/observability/metrics/metrics-server.js';
import { ServerLogger } from './modules/observability/server-logger.js';
import { ServerReadiness } from './modules/health/server-readiness.js';
import { LoadModelRepositoryHandler } from './modules/registry/load-model-repository/load-model-repository.handler.js';
import { RunInferenceJobs } from './modules/jobs/run-inference-jobs/run-inference-jobs.js';

export interface RunningServer {
  readonly app: NestFastifyApplication;
  /** The HTTP address actually bound (the port may have been 0). */
  readonly httpUrl: string;
  /** The gRPC address, `host:port` (the port actually bound). */
  readonly grpcAddress: string;
  /** The admin API's address with ADMIN_PORT (the port actually bound); undefined without (it is served at httpUrl). */
  readonly adminUrl?: string;
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
 * loads the model repository after, so probes see "live, not yet ready" while models load. A
 * repository that cannot be read, or a port that cannot be bound, is an InvalidConfigurationError
 * naming the variable (the process exits with code 2), and nothing is left running.
 */
export async function startServer(configured: AppConfig, overrides: AppOverrides = {}): Promise<RunningServer> {
  await checkModelRepository(configured);
  const config = await withAdminTokenFile(configured);
  // TLS of every port (or plaintext), its files checked first: a bad one is a configuration error.
  const tls = await ServerTls.start(config);
  const caps = connectionCaps({ http: config.HTTP_MAX_CONNECTIONS, grpc: config.GRPC_MAX_CONNECTIONS });
  // INGRESS_THREADS: the threads accept the serving port; this thread's server listens on a private
  // socket for what they forward, every connection a thread's (so X-Forwarded-For is theirs).
  const ingress = config.INGRESS_THREADS > 0 ? await IngressThreads.prepare() : undefined;
  const adapter = new FastifyAdapter({ ...servingFastifyOptions(config, tls, { maxConnections: caps.http }), ...(ingress && { trustProxy: true }) });
  noteRouteTemplates(adapter.getInstance());
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.with(config, tls, overrides, ingress), adapter, { bufferLogs: true });
  app.useLogger(app.get(ServerLogger));
  // Every HTTP answer is counted by its route template (Fastify's), never by its raw path.
  const httpMetrics = app.get(HttpMetrics);
  app.getHttpServer().on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (ingress && req.headers[HANDED_OVER_HEADER] !== undefined) return; // counted by its ingress thread
    whenAnswered(req, res, (method, route, status, elapsedMs) => httpMetrics.answered(method, route, status, elapsedMs));
  });
  // JSON within MAX_JSON_DEPTH; raw bytes for model uploads and binary tensor data.
  installRequestBodyParsers(adapter, { maxJsonDepth: config.MAX_JSON_DEPTH });
  // gzip/deflate request bodies and answers on the inference routes, as Triton's HTTP server.
  installContentCoding(adapter.getInstance(), { maxRequestBytes: config.MAX_REQUEST_BYTES });
  // ADMIN_PORT: the admin API on its own port, refused on the public ones.
  const adminListener = new AdminListener(config);
  adminListener.install(adapter.getInstance());
  app.useGlobalFilters(new ErrorResponseFilter({ maxRequestBytes: config.MAX_REQUEST_BYTES }));
  // The gRPC server shares the modules, the global error filter and the guards of the HTTP app.
  // With ingress threads, this thread's gRPC server serves what they forward, on its private socket, in
  // plaintext, and the threads hold GRPC_MAX_CONNECTIONS together.
  const grpcConnections = ingress ? undefined : new GrpcConnectionCap(caps.grpc);
  const grpcOptions = grpcConnections ? grpcServerOptions(config, grpcConnections, tls.grpcCredentials()).options : { ...grpcServerOptions(config).options, url: `unix:${ingress!.mainGrpcSocket}` };
  const grpcServer = new InferenceGrpcServer(grpcOptions);
  app.connectMicroservice({ strategy: grpcServer }, { inheritAppConfig: true });
  let port: number;
  let ingressGrpcPort: number | undefined;
  try {
    await app.startAllMicroservices().catch((error: unknown) => Promise.reject(bindFailure('GRPC_PORT', config, error)));
    grpcConnections?.apply();
    // listen() initialises the modules first, the metrics server (METRICS_PORT) among them.
    if (ingress) {
      await app.listen({ path: ingress.mainHttpSocket });
      ({ httpPort: port, grpcPort: ingressGrpcPort } = await ingress
        .start(config, app.get(IngressRequests), { maxConnections: caps.http, maxGrpcConnections: caps.grpc, sampling: app.get(Tracing).samplerSettings })
        .catch((error: unknown) => Promise.reject(bindFailure('HTTP_PORT', config, error))));
      app.get(MetricsServer).collectFirst(() => ingress.flush());
    } else {
      await app.listen({ port: config.HTTP_PORT, host: config.HOST }).catch((error: unknown) => Promise.reject(bindFailure('HTTP_PORT', config, error)));
      const address = app.getHttpServer().address();
      port = typeof address === 'object' && address ? address.port : config.HTTP_PORT;
    }
    await adminListener.listen(app.getHttpServer(), tls);
  } catch (error) {
    await app.close().catch(() => undefined); // the start's error is the one to report
    throw error;
  }
  tls.serve(app.getHttpServer());
  const grpcPort = ingressGrpcPort ?? grpcServer.port ?? config.GRPC_PORT;
  const metricsPort = config.ALLOW_METRICS ? app.get(MetricsServer).port : undefined;
  // Clients reach a server bound to every address on the loopback one.
  const host = config.HOST === '0.0.0.0' || config.HOST === '::' ? '127.0.0.1' : config.HOST;
  const httpUrl = `${tls.scheme}://${hostPort(host, port)}`;
  const grpcAddress = hostPort(host, grpcPort);
  const adminUrl = adminListener.port !== undefined ? `${tls.scheme}://${hostPort(host, adminListener.port)}` : undefined;
  const metricsUrl = metricsPort !== undefined ? `${tls.scheme}://${hostPort(host, metricsPort)}/metrics` : undefined;
  const bound = (p: number) => hostPort(config.HOST, p);
  app.get(Logger).log(tls.describe(), 'TLS');
  app
    .get(Logger)
    .log(`serving ${tls.scheme.toUpperCase()} on ${bound(port)}, gRPC${tls.enabled ? ' (TLS)' : ''} on ${bound(grpcPort)}, metrics ${metricsPort !== undefined ? `on ${bound(metricsPort)} (GET /metrics)` : 'off (ALLOW_METRICS=false)'}`, 'Server');
  const modelsLoaded = app.get(LoadModelRepositoryHandler).execute();
  // Jobs kept across a restart run once their models are loaded.
  void modelsLoaded.then(() => app.get(RunInferenceJobs).start()).catch((error: unknown) => app.get(Logger).error(`jobs not started: ${(error as Error).message}`, 'Jobs'));
  const shutdown = async () => {
    app.get(ServerReadiness).beginShutdown();
    app.get(Logger).log(`shutting down: not ready; serving on for ${config.SHUTDOWN_DRAIN_DELAY_MS} ms, then draining`, 'Server');
    await sleep(config.SHUTDOWN_DRAIN_DELAY_MS);
    await app.close();
  };
  return { app, httpUrl, grpcAddress, adminUrl, metricsUrl, modelsLoaded, shutdown };
}

/** `host:port`, an IPv6 host in brackets. */
function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}
