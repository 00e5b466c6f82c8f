import { Module, RequestMethod, type MiddlewareConsumer, type NestModule } from '@nestjs/common';
import { InferenceUseCase } from '../../domain/inference/inference-use-case.port.js';
import { RequestCancellations } from '../../domain/inference/request-cancellations.port.js';
import { InProcessCancellations } from '../../infra/transport/in-process-cancellations.js';
import { SystemSharedMemory } from '../../domain/shared-memory/system-shared-memory.js';
import { AppConfig } from '../../infra/config/app-config.js';
import { RolloutModule } from '../rollout/rollout.module.js';
import { ThrottlingModule } from '../throttling/throttling.module.js';
import { PosixSharedMemory } from '../../infra/shared-memory/posix-shared-memory.js';
import { RefuseBeforeReadingMiddleware } from './run-inference/refuse-before-reading.middleware.js';
import { RefusalBeforeReading } from './run-inference/refusal-before-reading.js';
import { RegistryModule } from '../registry/registry.module.js';
import { InferGrpcController } from './run-inference/infer.grpc.controller.js';
import { InferHttpController } from './run-inference/infer.http.controller.js';
import { RunInferenceHandler } from './run-inference/run-inference.handler.js';
import { InferIngressController } from './run-inference/infer.ingress.controller.js';
import { IngressRequests } from '../../infra/ingress/ingress-threads.js';
import { GenerateTextHandler } from './generate-text/generate-text.handler.js';
import { GenerateHttpController } from './generate-text/generate.http.controller.js';
import { OpenAiHttpController } from './generate-text/openai.http.controller.js';
import { CircuitBreakers } from './circuit-breakers.js';
import { ConcurrencyLimits } from './concurrency-limits.js';
import { GetModelStatisticsHandler } from './get-model-statistics/get-model-statistics.handler.js';
import { ModelStatisticsGrpcController } from './get-model-statistics/model-statistics.grpc.controller.js';
import { ModelStatisticsHttpController } from './get-model-statistics/model-statistics.http.controller.js';
import { ManageSharedMemoryHandler } from './manage-shared-memory/manage-shared-memory.handler.js';
import { SharedMemoryGrpcController } from './manage-shared-memory/shared-memory.grpc.controller.js';
import { SharedMemoryHttpController } from './manage-shared-memory/shared-memory.http.controller.js';

/** The inference bounded context: requests in, tensors out, on the runtime behind the engine port. */
@Module({
  imports: [RegistryModule, RolloutModule, ThrottlingModule],
  controllers: [
    InferHttpController,
    InferGrpcController,
    GenerateHttpController,
    OpenAiHttpController,
    ModelStatisticsHttpController,
    ModelStatisticsGrpcController,
    SharedMemoryHttpController,
    SharedMemoryGrpcController,
  ],
  // Generating text is a use case of its own (generate-text/) on the same breakers and limits; gRPC's infer calls reach it too.
  providers: [
    RunInferenceHandler,
    RefusalBeforeReading,
    { provide: InferenceUseCase, useExisting: RunInferenceHandler },
    // What ingress threads (INGRESS_THREADS) decoded runs here, on the schedulers' owner.
    { provide: IngressRequests, useClass: InferIngressController },
    { provide: RequestCancellations, useClass: InProcessCancellations },
    GenerateTextHandler,
    GetModelStatisticsHandler,
    CircuitBreakers,
    ConcurrencyLimits,
    ManageSharedMemoryHandler,
    {
      provide: SystemSharedMemory,
      useFactory: (config: AppConfig) =>
        new PosixSharedMemory({
          allowClients: config.ALLOW_CLIENT_SHM,
          limits: { maxRegions: config.SHARED_MEMORY_MAX_REGIONS, maxTotalBytes: config.SHARED_MEMORY_MAX_BYTES },
        }),
      inject: [AppConfig],
    },
  ],
  // Async jobs run through the same use case, by its port.
  exports: [InferenceUseCase, RequestCancellations, GenerateTextHandler],
})
export class InferenceModule implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(RefuseBeforeReadingMiddleware).forRoutes(
      { path: 'v2/models/:model/infer', method: RequestMethod.POST },
      { path: 'v2/models/:model/versions/:version/infer', method: RequestMethod.POST },
    );
  }
}
