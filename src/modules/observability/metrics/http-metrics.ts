import { Injectable } from '@nestjs/common';
import { InjectMetric, makeCounterProvider, makeHistogramProvider } from '@willsoto/nestjs-prometheus';
import type { Counter, Histogram } from 'prom-client';
import { AppConfig } from '../../../infra/config/app-config.js';

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);
/** The route label of a request no route matched: raw paths never become labels. */
const UNMATCHED_ROUTE = '_unmatched';

export const HTTP_METRIC_PROVIDERS = [
  makeCounterProvider({ name: 'http_requests_total', help: 'HTTP requests answered, by route template and status.', labelNames: ['method', 'route', 'status'] }),
  makeHistogramProvider({
    name: 'http_request_duration_seconds',
    help: 'HTTP requests, from their first byte to the answer, by route template.',
    labelNames: ['method', 'route'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  }),
  makeCounterProvider({
    name: 'http_ingress_thread_answers_total',
    help: 'HTTP requests an ingress thread answered itself (INGRESS_THREADS), by route template; counted in http_requests_total too. The rest went through the main thread.',
    labelNames: ['route'],
  }),
];

/** HTTP requests by route template (Fastify's, e.g. `/v2/models/:model/infer`), never by raw path. */
@Injectable()
export class HttpMetrics {
  private readonly enabled: boolean;

  constructor(
    config: AppConfig,
    @InjectMetric('http_requests_total') private readonly requests: Counter,
    @InjectMetric('http_request_duration_seconds') private readonly duration: Histogram,
    @InjectMetric('http_ingress_thread_answers_total') private readonly ingressThreadAnswers: Counter,
  ) {
    this.enabled = config.ALLOW_METRICS;
  }

  answered(method: string, routeTemplate: string | undefined, status: number, elapsedMs: number): void {
    if (!this.enabled) return;
    const labels = { method: METHODS.has(method) ? method : '_other', route: routeTemplate ?? UNMATCHED_ROUTE };
    this.requests.inc({ ...labels, status: String(status) });
    this.duration.observe(labels, elapsedMs / 1000);
  }

  /** An answer an ingress thread sent itself: counted as any answer, and as the thread's. */
  answeredOnIngressThread(method: string, routeTemplate: string | undefined, status: number, elapsedMs: number): void {
    this.answered(method, routeTemplate, status, elapsedMs);
    if (this.enabled) this.ingressThreadAnswers.inc({ route: routeTemplate ?? UNMATCHED_ROUTE });
  }
}
