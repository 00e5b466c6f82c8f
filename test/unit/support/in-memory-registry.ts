import { InferenceEngine, type EngineRun, type InstanceStatus, type LoadedModel } from '../../../src/domain/inference/inference-engine.port.js';
import type { ModelConfigLimits } from '../../../src/domain/registry/model-config-limits.js';
import { ModelConfigLimits as Limits } from '../../../src/domain/registry/model-config-limits.js';
import { ModelRepository, type ModelDirectory } from '../../../src/domain/registry/model-repository.port.js';
import { VersionTraffic } from '../../../src/domain/registry/version-traffic.port.js';
import type { ModelStateStore } from '../../../src/domain/registry/model-state-store.port.js';
import { OperationLocks } from '../../../src/domain/shared/operation-locks.port.js';
import { InProcessEventBus } from '../../../src/infra/messaging/in-process-event-bus.js';
import type { AppConfig } from '../../../src/infra/config/app-config.js';
import { ModelLifecycle } from '../../../src/modules/registry/manage-model-versions/model-lifecycle.js';
import { ModelRegistry } from '../../../src/modules/registry/model-registry.js';
import { ModelStates } from '../../../src/modules/registry/model-states.js';
import { VersionLoader } from '../../../src/modules/registry/version-loader.js';

/** A model repository in memory (shared by the "servers" of a test, as a shared volume is): model name -> version numbers. */
export class InMemoryModelRepository extends ModelRepository {
  readonly models = new Map<string, number[]>();

  async scan(): Promise<ModelDirectory[]> {
    return [...this.models.keys()].map((name) => this.directory(name));
  }
  async removeAbandonedUploads(): Promise<string[]> {
    return [];
  }
  async scanModel(name: string): Promise<ModelDirectory | undefined> {
    return this.models.has(name) ? this.directory(name) : undefined;
  }
  async addVersion(name: string, version: number, _bytes: Uint8Array, validate: (modelPath: string) => Promise<void>): Promise<void> {
    await validate(`/upload/${name}/${version}/model.onnx`);
    this.models.set(name, [...(this.models.get(name) ?? []), version]);
  }
  async warmupFilePath(): Promise<string> {
    throw new Error('no warm-up files here');
  }
  async readLabels(): Promise<string[]> {
    return [];
  }
  async sha256(modelPath: string): Promise<string> {
    return modelPath;
  }
  withoutPaths(text: string): string {
    return text;
  }
  private directory(name: string): ModelDirectory {
    return { name, versions: (this.models.get(name) ?? []).map((version) => ({ version, modelPath: `/repo/${name}/${version}/model.onnx` })), config: { ok: true, declared: {} } };
  }
}

/** An engine that loads anything at once and remembers what is loaded (one per "server"). */
export class RecordingEngine extends InferenceEngine {
  readonly loaded = new Set<string>();

  async load(key: string): Promise<LoadedModel> {
    this.loaded.add(key);
    return { signature: { inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 2] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 2] }] }, executionProvider: 'cpu' };
  }
  checkInputs(): void {}
  async run(): Promise<EngineRun> {
    return { outputs: [], computeMicros: 0 };
  }
  concurrency(): number {
    return 1;
  }
  async warmUp(): Promise<void> {}
  async unload(key: string): Promise<void> {
    this.loaded.delete(key);
  }
  status(): InstanceStatus[] {
    return [];
  }
}

/** Versions drain at once (no requests in these tests); the keys drained are kept, in order. */
class RecordingTraffic extends VersionTraffic {
  readonly drained: string[] = [];
  async drain(key: string): Promise<void> {
    this.drained.push(key);
  }
}

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
export function aServer(store: ModelStateStore, repository: ModelRepository, locks: OperationLocks) {
  const registry = new ModelRegistry();
  const engine = new RecordingEngine();
  const traffic = new RecordingTraffic();
  const states = new ModelStates(store, new InProcessEventBus());
  const loader = new VersionLoader(repository, engine, { MODEL_WARMUP_TIMEOUT_MS: 1000 } as AppConfig);
  const limits: ModelConfigLimits = new Limits({ maxThreads: 64, cpuQuota: 4, maxRequestBytes: 1 << 20, maxResponseBytes: 1 << 20 });
  const lifecycle = new ModelLifecycle(registry, repository, engine, loader, traffic, states, limits, locks);
  return { registry, engine, traffic, states, lifecycle };
}
