import { Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { collectDefaultMetrics, register } from 'prom-client';
import { AppConfig, bindFailure } from '../../../infra/config/app-config.js';
import { ModelVersionSchedulers } from '../../inference/model-version-schedulers.js';
import { InferenceMetrics } from './inference-metrics.js';

/**
 * Prometheus' scrape endpoint, `GET /metrics` on METRICS_PORT (Triton's 8002), apart from the
 * serving port so that the API and the metrics can be exposed differently. The gauges of the
 * present (version states, queues, workers) are read at each scrape; process metrics are
 * prom-client's defaults (event-loop delay, heap, RSS, CPU, handles).
 */
@Injectable()
export class MetricsServer implements OnApplicationBootstrap, OnApplicationShutdown {
  private server?: Server;

  constructor(
    private readonly config: AppConfig,
    private readonly metrics: InferenceMetrics,
    private readonly schedulers: ModelVersionSchedulers,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    if (!this.config.ALLOW_METRICS) return;
    if (!register.getSingleMetric('process_cpu_user_seconds_total')) collectDefaultMetrics();
    this.server = createServer((req, res) => {
      if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('metrics are at GET /metrics\n');
        return;
      }
      this.metrics.refresh((version) => this.schedulers.queuedOf(version));
      register.metrics().then(
        (text) => res.writeHead(200, { 'content-type': register.contentType }).end(text),
        (error: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${error.message}\n`),
      );
    });
    const listening = once(this.server, 'listening');
    this.server.listen(this.config.METRICS_PORT, this.config.HOST);
    await listening.catch((error: unknown) => {
      this.server = undefined; // nothing to close
      throw bindFailure('METRICS_PORT', this.config, error);
    });
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
