import { Global, Module, type DynamicModule, type OnApplicationShutdown } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import type { SpanExporter } from '@opentelemetry/sdk-trace';
import { RequestTracer } from '../../../domain/shared/request-tracer.port.js';
import { Tracing } from '../../../infra/tracing/tracing.js';
import { SERVER_VERSION } from '../../health/server-identity.js';
import { TracingInterceptor } from './tracing.interceptor.js';

/**
 * Tracing (configured by the OTEL_* environment; `spanExporter` replaces it, for tests) and the
 * global, transport-aware request-span interceptor, installed only when tracing is on: Nest runs
 * its rxjs interceptor pipeline for every request of a route that has any interceptor, so an
 * interceptor that would only test `enabled` still cost each request that pipeline (measured with
 * the gRPC access line's: ~20 µs of main-thread CPU per HTTP request). The gRPC access line
 * (GrpcAccessLogInterceptor) is bound by each gRPC controller (GrpcController), inside the span.
 * Global: tracing is the shared kernel every context reports to (the RequestTracer port).
 */
@Global()
@Module({})
export class TracingModule implements OnApplicationShutdown {
  constructor(private readonly tracing: Tracing) {}

  static with(spanExporter?: SpanExporter): DynamicModule {
    const tracing = new Tracing(process.env, SERVER_VERSION, spanExporter);
    return {
      module: TracingModule,
      providers: [
        { provide: Tracing, useValue: tracing },
        { provide: RequestTracer, useExisting: Tracing },
        ...(tracing.enabled ? [{ provide: APP_INTERCEPTOR, useClass: TracingInterceptor }] : []),
      ],
      exports: [Tracing, RequestTracer],
    };
  }

  /** Exports what is still buffered. */
  async onApplicationShutdown(): Promise<void> {
    await this.tracing.shutdown();
  }
}
