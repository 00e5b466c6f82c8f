import { Global, Module, type DynamicModule } from '@nestjs/common';
import { AppConfig } from './infra/config/app-config.js';
import { OnnxRuntimeModule } from './infra/onnx/onnx-runtime.module.js';
import { HealthModule } from './modules/health/health.module.js';
import { InferenceModule } from './modules/inference/inference.module.js';
import { SchedulingModule } from './modules/inference/scheduling.module.js';
import { MetricsModule } from './modules/observability/metrics/metrics.module.js';
import { ObservabilityModule } from './modules/observability/observability.module.js';
import { RegistryModule } from './modules/registry/registry.module.js';
import { RolloutModule } from './modules/rollout/rollout.module.js';

@Global()
@Module({})
class ConfigModule {
  static with(config: AppConfig): DynamicModule {
    return { module: ConfigModule, providers: [{ provide: AppConfig, useValue: config }], exports: [AppConfig] };
  }
}

/** Wires the bounded contexts; the configuration is validated before this module is built. */
export class AppModule {
  static with(config: AppConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [ConfigModule.with(config), ObservabilityModule, MetricsModule, OnnxRuntimeModule, SchedulingModule, RegistryModule, RolloutModule, InferenceModule, HealthModule],
    };
  }
}
