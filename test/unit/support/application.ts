import { Logger } from '@nestjs/common';
import { ModelConfigLimits } from '../../../src/domain/registry/model-config-limits.js';
import { loadAppConfig, type AppConfig } from '../../../src/infra/config/app-config.js';
import { CircuitBreakers } from '../../../src/modules/inference/circuit-breakers.js';
import { ConcurrencyLimits } from '../../../src/modules/inference/concurrency-limits.js';
import { ModelVersionSchedulers } from '../../../src/modules/inference/model-version-schedulers.js';
import { RunInferenceHandler } from '../../../src/modules/inference/run-inference/run-inference.handler.js';
import { LoadModelRepositoryHandler } from '../../../src/modules/registry/load-model-repository/load-model-repository.handler.js';
import { ModelLifecycle } from '../../../src/modules/registry/manage-model-versions/model-lifecycle.js';
import { TritonRepository } from '../../../src/modules/registry/manage-model-versions/triton-repository.js';
import { ModelRegistry } from '../../../src/modules/registry/model-registry.js';
import { ModelStates } from '../../../src/modules/registry/model-states.js';
import { VersionLoader } from '../../../src/modules/registry/version-loader.js';
import { SERVED_BACKENDS } from '../../support/model-backends.js';
import { FakeClock } from './fake-clock.js';
import { FakeInferenceEngine } from './fake-inference-engine.js';
import { InMemoryModelRepository } from './in-memory-model-repository.js';
import { IdleTraffic, InMemorySharedMemory, InMemoryTrafficRouter, NoTokenizers, NoTracing, RecordedMetrics, RecordingEventBus } from './in-memory-ports.js';
import { FakeGenerationEngine } from './fake-generation-engine.js';
import { InMemoryModelStateStore } from './in-memory-stores.js';
import { InProcessCancellations } from '../../../src/infra/transport/in-process-cancellations.js';
import { SingleServerLocks } from '../../../src/infra/single-server/single-server-locks.js';

// The services log through Nest's static logger; these tests read states, not lines.
Logger.overrideLogger(false);

/** A configuration from these environment variables (the defaults for the rest). */
export function aConfig(env: Record<string, string> = {}): AppConfig {
  return loadAppConfig(env);
}

const LIMITS = new ModelConfigLimits({ maxThreads: 64, cpuQuota: 8, maxRequestBytes: 64 * 1024 * 1024, maxResponseBytes: 64 * 1024 * 1024 });

/**
 * The registry context's application services wired by hand over in-memory ports (no Nest, no
 * files, no runtime): the repository, the engine, the state store, the event bus, the traffic.
 */
export function registryServices(repository = new InMemoryModelRepository(), engine = new FakeInferenceEngine(), config = aConfig()) {
  const events = new RecordingEventBus();
  const store = new InMemoryModelStateStore();
  const traffic = new IdleTraffic();
  const registry = new ModelRegistry();
  const states = new ModelStates(store, events);
  const loader = new VersionLoader(repository, engine, config, SERVED_BACKENDS, new FakeGenerationEngine(), new NoTokenizers());
  const lifecycle = new ModelLifecycle(registry, repository, loader, traffic, states, LIMITS, new SingleServerLocks());
  const startup = new LoadModelRepositoryHandler(repository, registry, loader, states, LIMITS);
  const triton = new TritonRepository(repository, registry, lifecycle);
  return { repository, engine, config, events, store, traffic, registry, states, loader, lifecycle, startup, triton };
}

/** The inference context's services over the registry's (started: the repository loaded). */
export async function inferenceServices(repository: InMemoryModelRepository, engine = new FakeInferenceEngine(), config = aConfig()) {
  const services = registryServices(repository, engine, config);
  await services.startup.execute();
  const metrics = new RecordedMetrics();
  const router = new InMemoryTrafficRouter();
  const schedulers = new ModelVersionSchedulers(engine, config, metrics.asInferenceMetrics(), new NoTracing(), new FakeClock());
  const breakers = new CircuitBreakers(config, services.events, metrics.asInferenceMetrics());
  const limits = new ConcurrencyLimits(config, services.events, metrics.asInferenceMetrics());
  breakers.onModuleInit();
  limits.onModuleInit();
  const cancellations = new InProcessCancellations();
  const sharedMemory = new InMemorySharedMemory();
  const handler = new RunInferenceHandler(services.registry, schedulers, engine, router, metrics.asInferenceMetrics(), new NoTracing(), breakers, limits, config, cancellations, sharedMemory);
  return { ...services, metrics, router, schedulers, breakers, limits, cancellations, sharedMemory, handler, stop: () => breakers.onApplicationShutdown() };
}
