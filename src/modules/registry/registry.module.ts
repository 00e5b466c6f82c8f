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
import { StateBackend } from '../../infra/persistence/state-backend.js';
import { Leadership } from '../../domain/shared/leadership.port.js';
import { RolloutFigures } from '../../domain/rollout/rollout-figures.port.js';
import { RolloutRepository } from '../../domain/rollout/rollout-repository.port.js';
import { StableVersionSwitch } from '../../domain/rollout/stable-version-switch.port.js';
import { OperationLocks } from '../../domain/shared/operation-locks.port.js';
import { GetModelMetadataHandler } from './get-model-metadata/get-model-metadata.handler.js';
import { ModelMetadataGrpcController } from './get-model-metadata/model-metadata.grpc.controller.js';
import { ModelMetadataHttpController } from './get-model-metadata/model-metadata.http.controller.js';
import { LoadModelRepositoryHandler } from './load-model-repository/load-model-repository.handler.js';
import { AdminAuthGuard } from './manage-model-versions/admin-auth.guard.js';
import { AdminModelsHttpController } from './manage-model-versions/admin-models.http.controller.js';
import { AdminOpenApiHttpController } from './manage-model-versions/admin-openapi.http.controller.js';
import { AdminToken } from './manage-model-versions/admin-token.js';
import { ModelLifecycle } from './manage-model-versions/model-lifecycle.js';
import { FollowSavedModelStates } from './follow-other-servers/follow-saved-model-states.handler.js';
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

/** What a caller (a test) may give instead of the stores that the configuration picks. */
export interface StateStores {
  readonly modelStateStore?: ModelStateStore;
  readonly rolloutRepository?: RolloutRepository;
}

/**
 * Where model states and rollouts are kept, the locks of operations on them and the election of
 * the rollout judge: files in STATE_DIR for one server by default, Redis (REDIS_URL) for replicas
 * (StateBackend); or the stores a caller gives (a test injecting a store that fails).
 */
@Global()
@Module({})
export class StateStoreModule {
  static with(stores: StateStores = {}): DynamicModule {
    return {
      module: StateStoreModule,
      providers: [
        { provide: StateBackend, inject: [AppConfig], useFactory: (config: AppConfig) => StateBackend.from(config) },
        { provide: ModelStateStore, inject: [StateBackend], useFactory: (backend: StateBackend) => stores.modelStateStore ?? backend.modelStates },
        { provide: RolloutRepository, inject: [StateBackend], useFactory: (backend: StateBackend) => stores.rolloutRepository ?? backend.rollouts },
        { provide: OperationLocks, inject: [StateBackend], useFactory: (backend: StateBackend) => backend.locks },
        { provide: Leadership, inject: [StateBackend], useFactory: (backend: StateBackend) => backend.leadership },
        { provide: RolloutFigures, inject: [StateBackend], useFactory: (backend: StateBackend) => backend.rolloutFigures },
      ],
      exports: [StateBackend, ModelStateStore, RolloutRepository, OperationLocks, Leadership, RolloutFigures],
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
    FollowSavedModelStates,
    // What a rollout's promotion asks of this context: the hot swap.
    { provide: StableVersionSwitch, useExisting: ModelLifecycle },
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
  exports: [ModelRegistry, ModelCatalog, LoadModelRepositoryHandler, ModelLifecycle, ModelStates, AdminToken, StableVersionSwitch],
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
