import { Injectable } from '@nestjs/common';
import { InjectMetric, makeCounterProvider, makeGaugeProvider } from '@willsoto/nestjs-prometheus';
import type { Counter, Gauge } from 'prom-client';
import { AppConfig } from '../../../infra/config/app-config.js';
import type { StreamFlowObserver } from '../../../infra/grpc/concurrent-stream.js';

export const STREAM_METRIC_PROVIDERS = [
  makeGaugeProvider({
    name: 'grpc_stream_buffered_bytes',
    help: 'Bytes ModelStreamInfer streams hold: requests in flight and answers their clients have not read yet (each stream at most GRPC_STREAM_MAX_BUFFERED_BYTES).',
  }),
  makeCounterProvider({
    name: 'grpc_stream_read_pauses_total',
    help: 'Times a ModelStreamInfer stream stopped reading because it held its limit (GRPC_STREAM_MAX_BUFFERED_BYTES, or its requests in flight).',
  }),
];

/** What the gRPC streams hold: the flow-control observer of every ModelStreamInfer stream. */
@Injectable()
export class StreamMetrics implements StreamFlowObserver {
  private readonly enabled: boolean;

  constructor(
    config: AppConfig,
    @InjectMetric('grpc_stream_buffered_bytes') private readonly bufferedBytes: Gauge,
    @InjectMetric('grpc_stream_read_pauses_total') private readonly pauses: Counter,
  ) {
    this.enabled = config.ALLOW_METRICS;
  }

  buffered(deltaBytes: number): void {
    if (this.enabled) this.bufferedBytes.inc(deltaBytes);
  }

  paused(): void {
    if (this.enabled) this.pauses.inc();
  }
}
