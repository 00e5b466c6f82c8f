import { ModelVersion } from '../../../src/domain/registry/model-version.js';
import { DEFAULT_VERSION_POLICY, type VersionPolicy } from '../../../src/domain/registry/version-policy.js';
import type { ModelConfig } from '../../../src/domain/registry/model-config.js';
import { ONNX_RUNTIME_BACKEND } from '../../support/model-backends.js';
import { DEFAULT_QUEUE_POLICY, type SchedulingPolicy } from '../../../src/domain/inference/scheduling-policy.js';

/** A scheduling policy: batching up to 8 rows, no wait, one priority level, the default queue policy. */
export function aSchedulingPolicy(overrides: Partial<SchedulingPolicy> = {}): SchedulingPolicy {
  return {
    batching: true,
    maxBatchSize: 8,
    preferredBatchSizes: [],
    maxQueueDelayMicros: 0,
    adaptiveQueueDelay: false,
    priorityLevels: 0,
    defaultPriorityLevel: 0,
    defaultQueuePolicy: DEFAULT_QUEUE_POLICY,
    priorityQueuePolicies: new Map(),
    ...overrides,
  };
}

/** A served configuration for a small batching FP32 model; override what the test is about. */
export function aModelConfig(overrides: Partial<ModelConfig> & { versionPolicy?: VersionPolicy } = {}): ModelConfig {
  return {
    name: 'resnet',
    platform: ONNX_RUNTIME_BACKEND.platforms[0],
    backend: ONNX_RUNTIME_BACKEND.name,
    maxBatchSize: 8,
    inputs: [{ name: 'image', datatype: 'FP32', dims: [3, 224, 224] }],
    outputs: [{ name: 'scores', datatype: 'FP32', dims: [1000] }],
    versionPolicy: DEFAULT_VERSION_POLICY,
    instanceCount: 1,
    instanceKind: 'KIND_CPU',
    gpuAccelerators: [],
    allowSpinning: false,
    scheduling: aSchedulingPolicy(),
    concurrency: {},
    modelWarmup: [],
    labels: new Map(),
    ...overrides,
  };
}

type Step = (version: ModelVersion) => void;

/** Object mother: `aModelVersion().of('resnet').numbered(2).ready().build()`. */
export function aModelVersion(): ModelVersionBuilder {
  return new ModelVersionBuilder();
}

export const LOADED_AT = new Date('2024-01-02T03:04:05.000Z');
export const FILE_SHA256 = 'ab'.repeat(32);

export class ModelVersionBuilder {
  private modelName = 'resnet';
  private number = 1;
  private steps: Step[] = [];

  of(modelName: string): this {
    this.modelName = modelName;
    return this;
  }

  numbered(version: number): this {
    this.number = version;
    return this;
  }

  loading(): this {
    return this.then((v) => v.markLoading());
  }

  ready(config?: ModelConfig, executionProvider = 'cpu'): this {
    return this.loading().then((v) => v.markReady({ config: config ?? aModelConfig({ name: v.modelName }), executionProvider, fileSha256: FILE_SHA256, loadedAt: LOADED_AT }));
  }

  failed(reason = 'the model file is corrupt'): this {
    return this.loading().then((v) => v.markFailed(reason));
  }

  unloading(): this {
    return this.ready().then((v) => v.beginUnload());
  }

  unloaded(): this {
    return this.unloading().then((v) => v.markUnloaded());
  }

  build(): ModelVersion {
    const version = ModelVersion.register(this.modelName, this.number, `/models/${this.modelName}/${this.number}/model.onnx`);
    for (const step of this.steps) step(version);
    return version;
  }

  private then(step: Step): this {
    this.steps.push(step);
    return this;
  }
}
