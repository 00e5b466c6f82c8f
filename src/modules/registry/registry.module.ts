import { Global, Module, type DynamicModule } from '@nestjs/common';
import { ModelConfigLimits } from '../../domain/registry/model-config-limits.js';
import { ModelRepository } from '../../domain/registry/model-repository.port.js';
import { ModelStateStore } from '../../domain/registry/model-state-store.port.js';
import { DomainEventBus } from '../../domain/shared/domain-event-bus.port.js';
import { AppConfig } from '../../infra/config/app-config.js';
import { InProcessEventBus } from '../../infra/messaging/in-process-event-bus.js';
import { FileSystemModelRepository } from '../../infra/model-repository/file-system-model-repository.js';
import { cpuQuota } from '../../infra/host/cpu-quota.js';
import { ModelBackends } from '../../domain/registry/model-backend.js';
import { ModelCatalog } from '../../domain/registry/model-catalog.port.js';
import { ModelBackendsModule } from '../../infra/backends/model-backends.module.js';
import { FileModelStateStore } from '../../infra/persistence/file-model-state-store.js';
import { GetModelMetadataHandler } from './get-model-metadata/get-model-metadata.handler.js';
import { ModelMetadataGrpcController } from './get-model-metadata/model-metadata.grpc.controller.js';
import { ModelMetadataHttpController } from './get-model-metadata/model-metadata.http.controller.js';
import { LoadModelRepositoryHandler } from './load-model-repository/load-model-repository.handler.js';
import { AdminAuthGuard } from './manage-model-versions/admin-auth.guard.js';
import { AdminModelsHttpController } from './manage-model-versions/admin-models.http.controller.js';
import { AdminOpenApiHttpController } from './manage-model-versions/admin-openapi.http.controller.js';
import { AdminToken } from './manage-model-versions/admin-token.js';
import { ModelLifecycle } from './manage-model-versions/model-lifecycle.js';
import { RepositoryGrpcController } from './manage-model-versions/repository.grpc.controller.js';
import { RepositoryHttpController } from './manage-model-versions/repository.http.controller.js';
import { TritonRepository } from './manage-model-versions/triton-repository.js';
import { ModelRegistry } from './model-registry.js';
import { ModelStates } from './model-states.js';
import { VersionLoader } from './version-loader.js';

/** Where domain events go; the in-process bus by default (a distributed one replaces it for replicas). Global: events are how contexts talk. */
@Global()
@Module({
  providers: [{ provide: DomainEventBus, useClass: InProcessEventBus }],
  exports: [DomainEventBus],
})
class MessagingModule {}

/**
 * Where model states are kept: the embedded file store in STATE_DIR by default, or the store a
 * caller gives (a test injecting a store that fails, a distributed store). Global: the app
 * configures it once (AppModule.with), and a module importing it would get another instance.
 */
@Global()
@Module({})
export class StateStoreModule {
  static with(store?: ModelStateStore): DynamicModule {
    return {
      module: StateStoreModule,
      providers: [
        store
          ? { provide: ModelStateStore, useValue: store }
          : { provide: ModelStateStore, inject: [AppConfig], useFactory: (config: AppConfig) => new FileModelStateStore(config.STATE_DIR) },
      ],
      exports: [ModelStateStore],
    };
  }
}

/** The model registry bounded context: which models and versions exist, their states and configs, and the admin API. */
@Module({
  imports: [MessagingModule, ModelBackendsModule],
  controllers: [
    ModelMetadataHttpController,
    ModelMetadataGrpcController,
    AdminModelsHttpController,
    RepositoryHttpController,
    RepositoryGrpcController,
    AdminOpenApiHttpController,
  ],
  providers: [
    ModelRegistry,
    { provide: ModelCatalog, useExisting: ModelRegistry },
    LoadModelRepositoryHandler,
    GetModelMetadataHandler,
    VersionLoader,
    ModelStates,
    ModelLifecycle,
    TritonRepository,
    AdminAuthGuard,
    {
      provide: AdminToken,
      inject: [AppConfig],
      useFactory: async (config: AppConfig) => {
        const token = new AdminToken(config);
        await token.init();
        return token;
      },
    },
    {
      provide: ModelRepository,
      inject: [AppConfig, ModelBackends],
      useFactory: (config: AppConfig, backends: ModelBackends) => new FileSystemModelRepository(config.MODEL_REPOSITORY, backends),
    },
    { provide: ModelConfigLimits, inject: [AppConfig], useFactory: modelConfigLimitsOf },
  ],
  exports: [ModelRegistry, ModelCatalog, LoadModelRepositoryHandler, ModelLifecycle, ModelStates, AdminToken],
})
export class RegistryModule {}

/** What a model's configuration may ask of this host: threads by the CPU quota (unless MAX_MODEL_THREADS says), tensors by the request and answer limits. */
function modelConfigLimitsOf(config: AppConfig): ModelConfigLimits {
  const quota = cpuQuota();
  return new ModelConfigLimits({
    maxThreads: config.MAX_MODEL_THREADS || 2 * quota,
    cpuQuota: quota,
    maxRequestBytes: config.MAX_REQUEST_BYTES,
    maxResponseBytes: config.MAX_RESPONSE_BYTES,
  });
}
