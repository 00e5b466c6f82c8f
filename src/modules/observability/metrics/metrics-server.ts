import { Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { once } from 'node:events';
import { collectDefaultMetrics, register } from 'prom-client';
import { AppConfig, bindFailure } from '../../../infra/config/app-config.js';
import { createLimitedServer, type Server } from '../../../infra/http/connection-limits.js';
import { ServerTls } from '../../../infra/tls/server-tls.js';
import { SchedulerQueues } from '../../../domain/inference/scheduler-queues.port.js';
import { GenerationMetrics } from './generation-metrics.js';
import { InferenceMetrics } from './inference-metrics.js';

/**
 * Prometheus' scrape endpoint, `GET /metrics` on METRICS_PORT (Triton's 8002), apart from the
 * serving port so that the API and the metrics can be exposed differently. The gauges of the
 * present (version states, queues, workers) are read at each scrape; process metrics are
 * prom-client's defaults (event-loop delay, heap, RSS, CPU, handles). With TLS_CERT_FILE it is
 * served like the API ports: HTTPS with the same certificate (reloaded alike) and the same
 * TLS_CLIENT_AUTH, so Prometheus scrapes it with `scheme: https` and its own client certificate.
 */
@Injectable()
export class MetricsServer implements OnApplicationBootstrap, OnApplicationShutdown {
  private server?: Server;
  /** What must be counted before a scrape is rendered (the ingress threads' reports). */
  private collect: () => Promise<void> = () => Promise.resolve();

  constructor(
    private readonly config: AppConfig,
    private readonly metrics: InferenceMetrics,
    private readonly schedulers: SchedulerQueues,
    private readonly generation: GenerationMetrics,
    private readonly tls: ServerTls,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    if (!this.config.ALLOW_METRICS) return;
    if (!register.getSingleMetric('process_cpu_user_seconds_total')) collectDefaultMetrics();
    // The serving port's bounds on connections, idle keep-alive and slow clients (Node's defaults held a
    // slow client 45-75 s), and its TLS.
    this.server = createLimitedServer(
      {
        maxConnections: this.config.METRICS_MAX_CONNECTIONS,
        keepAliveTimeoutMs: this.config.HTTP_KEEP_ALIVE_TIMEOUT_MS,
        headersTimeoutMs: this.config.HTTP_HEADERS_TIMEOUT_MS,
        requestTimeoutMs: this.config.HTTP_REQUEST_TIMEOUT_MS,
      },
      (req, res) => {
      if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
        // Whatever body came with it is not read: the connection goes with the answer.
        res.writeHead(404, { 'content-type': 'text/plain', connection: 'close' }).end('metrics are at GET /metrics\n');
        return;
      }
      this.collect()
        .then(() => {
          this.metrics.refresh((version) => this.schedulers.queuedOf(version.key));
          this.generation.refresh();
          return register.metrics();
        })
        .then(
        (text) => res.writeHead(200, { 'content-type': register.contentType }).end(text),
        (error: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${error.message}\n`),
      );
      },
      this.tls.httpsOptionsIfEnabled(),
    );
    this.tls.serve(this.server);
    const listening = once(this.server, 'listening');
    this.server.listen(this.config.METRICS_PORT, this.config.HOST);
    await listening.catch((error: unknown) => {
      this.server = undefined; // nothing to close
      throw bindFailure('METRICS_PORT', this.config, error);
    });
  }

  /** Has `collect` run before each scrape is rendered. */
  collectFirst(collect: () => Promise<void>): void {
    this.collect = collect;
  }

  /** The node:http server of the metrics port (undefined with ALLOW_METRICS=false). */
  get httpServer(): Server | undefined {
    return this.server;
  }

  /** The port bound (METRICS_PORT, or the one chosen when it is 0). */
  get port(): number {
    const address = this.server?.address();
    return typeof address === 'object' && address ? address.port : this.config.METRICS_PORT;
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.server) {
      this.server.closeAllConnections();
      await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    }
    // The registry is the process's: a server started after this one (tests) registers afresh.
    register.clear();
  }
}
