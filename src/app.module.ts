import { Global, Module, type DynamicModule } from '@nestjs/common';
import type { SpanExporter } from '@opentelemetry/sdk-trace';
import { AppConfig } from './infra/config/app-config.js';
import { OnnxRuntimeModule } from './infra/onnx/onnx-runtime.module.js';
import { TokenizerModule } from './infra/tokenizer/hugging-face-tokenizers.js';
import { ServerTls } from './infra/tls/server-tls.js';
import { IngressThreads } from './infra/ingress/ingress-threads.js';
import { HealthModule } from './modules/health/health.module.js';
import { InferenceModule } from './modules/inference/inference.module.js';
import { JobsModule } from './modules/jobs/jobs.module.js';
import { SchedulingModule } from './modules/inference/scheduling.module.js';
import { MetricsModule } from './modules/observability/metrics/metrics.module.js';
import { ObservabilityModule } from './modules/observability/observability.module.js';
import { TracingModule } from './modules/observability/tracing/tracing.module.js';
import type { ModelStateStore } from './domain/registry/model-state-store.port.js';
import type { RolloutRepository } from './domain/rollout/rollout-repository.port.js';
import { RegistryModule, StateStoreModule } from './modules/registry/registry.module.js';
import { RolloutModule } from './modules/rollout/rollout.module.js';
import { ThrottlingModule } from './modules/throttling/throttling.module.js';

/** Global: the settings and the TLS material, which every context reads. */
@Global()
@Module({})
class ConfigModule {
  static with(config: AppConfig, tls: ServerTls, ingress?: IngressThreads): DynamicModule {
    // The ingress threads are closed by Nest's first shutdown hook, before the schedulers drain.
    const threads = ingress ? [{ provide: IngressThreads, useValue: ingress }] : [];
    return { module: ConfigModule, providers: [{ provide: AppConfig, useValue: config }, { provide: ServerTls, useValue: tls }, ...threads], exports: [AppConfig, ServerTls] };
  }
}

/** What a caller (a test) may replace in the app. */
export interface AppOverrides {
  /** Where spans go, instead of what OTEL_* says. */
  readonly spanExporter?: SpanExporter;
  /** Where model states are kept, instead of the file store in STATE_DIR. */
  readonly modelStateStore?: ModelStateStore;
  /** Where rollouts are kept, instead of the file store in STATE_DIR/rollouts. */
  readonly rolloutRepository?: RolloutRepository;
}

/** Wires the bounded contexts; the configuration is validated (and TLS' files read) before this module is built. */
export class AppModule {
  static with(config: AppConfig, tls: ServerTls, overrides: AppOverrides = {}, ingress?: IngressThreads): DynamicModule {
    return {
      module: AppModule,
      imports: [ConfigModule.with(config, tls, ingress), TracingModule.with(overrides.spanExporter), StateStoreModule.with(overrides), ObservabilityModule, MetricsModule, OnnxRuntimeModule, TokenizerModule, SchedulingModule, ThrottlingModule, RegistryModule, RolloutModule, InferenceModule, JobsModule, HealthModule],
    };
  }
}
