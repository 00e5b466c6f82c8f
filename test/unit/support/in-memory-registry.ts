import { ModelConfigLimits } from '../../../src/domain/registry/model-config-limits.js';
import type { ModelStateStore } from '../../../src/domain/registry/model-state-store.port.js';
import { OperationLocks } from '../../../src/domain/shared/operation-locks.port.js';
import { InProcessEventBus } from '../../../src/infra/messaging/in-process-event-bus.js';
import type { AppConfig } from '../../../src/infra/config/app-config.js';
import { ModelLifecycle } from '../../../src/modules/registry/manage-model-versions/model-lifecycle.js';
import { ModelRegistry } from '../../../src/modules/registry/model-registry.js';
import { ModelStates } from '../../../src/modules/registry/model-states.js';
import { VersionLoader } from '../../../src/modules/registry/version-loader.js';
import { SERVED_BACKENDS } from '../../support/model-backends.js';
import { FakeInferenceEngine } from './fake-inference-engine.js';
import { IdleTraffic, NoTokenizers } from './in-memory-ports.js';
import { FakeGenerationEngine } from './fake-generation-engine.js';
import type { InMemoryModelRepository } from './in-memory-model-repository.js';

/** Cluster-wide locks in memory: one queue per key, shared by the "servers" of a test. */
export class InMemoryLocks extends OperationLocks {
  private readonly queues = new Map<string, Promise<unknown>>();
  run<T>(key: string, operation: () => Promise<T>): Promise<T> {
    const result = (this.queues.get(key) ?? Promise.resolve()).then(operation, operation);
    this.queues.set(key, result.catch(() => undefined));
    return result;
  }
}

/** One "server": its registry, engine and lifecycle, over a store, a repository and locks it may share with others. */
export function aServer(store: ModelStateStore, repository: InMemoryModelRepository, locks: OperationLocks) {
  const registry = new ModelRegistry();
  const engine = new FakeInferenceEngine();
  const traffic = new IdleTraffic();
  const states = new ModelStates(store, new InProcessEventBus());
  const loader = new VersionLoader(repository, engine, { MODEL_WARMUP_TIMEOUT_MS: 1000 } as AppConfig, SERVED_BACKENDS, new FakeGenerationEngine(), new NoTokenizers());
  const limits = new ModelConfigLimits({ maxThreads: 64, cpuQuota: 4, maxRequestBytes: 1 << 20, maxResponseBytes: 1 << 20 });
  const lifecycle = new ModelLifecycle(registry, repository, loader, traffic, states, limits, locks);
  return { registry, engine, traffic, states, lifecycle };
}
