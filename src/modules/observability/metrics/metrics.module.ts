import { Global, Module } from '@nestjs/common';
import { RegistryModule } from '../../registry/registry.module.js';
import { GENERATION_METRIC_PROVIDERS, GenerationMetrics } from './generation-metrics.js';
import { HTTP_METRIC_PROVIDERS, HttpMetrics } from './http-metrics.js';
import { INFERENCE_METRIC_PROVIDERS, InferenceMetrics } from './inference-metrics.js';
import { MetricsServer } from './metrics-server.js';
import { STREAM_METRIC_PROVIDERS, StreamMetrics } from './stream-metrics.js';

/**
 * Prometheus metrics: prom-client's metrics made by @willsoto/nestjs-prometheus' providers, in the
 * default registry, served by MetricsServer on METRICS_PORT (not by the module's controller on the
 * API port). Global: metrics are the shared kernel every context reports to.
 */
@Global()
@Module({
  imports: [RegistryModule],
  providers: [...INFERENCE_METRIC_PROVIDERS, ...HTTP_METRIC_PROVIDERS, ...STREAM_METRIC_PROVIDERS, ...GENERATION_METRIC_PROVIDERS, InferenceMetrics, HttpMetrics, StreamMetrics, GenerationMetrics, MetricsServer],
  exports: [InferenceMetrics, HttpMetrics, StreamMetrics, GenerationMetrics, MetricsServer],
})
export class MetricsModule {}
