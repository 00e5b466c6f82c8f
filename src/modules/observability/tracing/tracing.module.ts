import { Global, Module, type DynamicModule, type OnApplicationShutdown } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import type { SpanExporter } from '@opentelemetry/sdk-trace';
import { RequestTracer } from '../../../domain/shared/request-tracer.port.js';
import { Tracing } from '../../../infra/tracing/tracing.js';
import { SERVER_VERSION } from '../../health/server-identity.js';
import { GrpcAccessLogInterceptor } from './grpc-access-log.interceptor.js';
import { TracingInterceptor } from './tracing.interceptor.js';

/**
 * Tracing (configured by the OTEL_* environment; `spanExporter` replaces it, for tests) and the
 * global, transport-aware interceptors: the request span, then the gRPC access line inside it.
 * Global: tracing is the shared kernel every context reports to (the RequestTracer port).
 */
@Global()
@Module({})
export class TracingModule implements OnApplicationShutdown {
  constructor(private readonly tracing: Tracing) {}

  static with(spanExporter?: SpanExporter): DynamicModule {
    return {
      module: TracingModule,
      providers: [
        { provide: Tracing, useFactory: () => new Tracing(process.env, SERVER_VERSION, spanExporter) },
        { provide: RequestTracer, useExisting: Tracing },
        { provide: APP_INTERCEPTOR, useClass: TracingInterceptor },
        { provide: APP_INTERCEPTOR, useClass: GrpcAccessLogInterceptor },
      ],
      exports: [Tracing, RequestTracer],
    };
  }

  /** Exports what is still buffered. */
  async onApplicationShutdown(): Promise<void> {
    await this.tracing.shutdown();
  }
}
