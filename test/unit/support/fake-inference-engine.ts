import {
  type BatchMembers,
  InferenceEngine,
  type EngineRun,
  type EngineRunOptions,
  type InstanceStatus,
  type LoadedModel,
  type RuntimeOptions,
  type WarmupSample,
} from '../../../src/domain/inference/inference-engine.port.js';
import type { ModelSignature } from '../../../src/domain/inference/tensor.js';
import { DomainError } from '../../../src/domain/shared/domain-error.js';
import { batchRows, mergeInputs, splitOutputs } from '../../../src/domain/inference/batch.js';
import type { RuntimeKey } from '../../../src/domain/shared/model-version-id.js';

/** FP32 `x` [-1, 2] in, FP32 `y` [-1, 2] out: a batching model. */
export const ECHO_SIGNATURE: ModelSignature = {
  inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 2] }],
  outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 2] }],
};

interface Loaded {
  readonly key: RuntimeKey;
  readonly modelPath: string;
  readonly options: RuntimeOptions;
  warmedUpWith: readonly WarmupSample[];
}

/**
 * An engine in memory: "loading" a model file gives the signature set for it (ECHO_SIGNATURE
 * unless told), or the failure set for it; a run answers each requested output with the first
 * input's data (times `factor`), or fails as told. What is loaded, and with which warm-up, is
 * its state, read through status() and `loaded`.
 */
export class FakeInferenceEngine extends InferenceEngine {
  private readonly instances = new Map<string, Loaded>();
  private readonly signatures = new Map<string, ModelSignature>();
  private readonly loadFailures = new Map<string, string>();
  private readonly warmupFailures = new Map<string, string>();
  private readonly runFailures = new Map<string, () => Error>();
  private readonly factors = new Map<string, number>();

  /** The model file at `modelPath` declares this signature. */
  withSignature(modelPath: string, signature: ModelSignature): this {
    this.signatures.set(modelPath, signature);
    return this;
  }

  /** Loading `modelPath` fails with this message (as onnxruntime's would). */
  failingLoad(modelPath: string, message: string): this {
    this.loadFailures.set(modelPath, message);
    return this;
  }

  failingWarmup(modelPath: string, message: string): this {
    this.warmupFailures.set(modelPath, message);
    return this;
  }

  /** Runs of the file at `modelPath` multiply the input by `factor` (tells two versions' answers apart). */
  multiplying(modelPath: string, factor: number): this {
    this.factors.set(modelPath, factor);
    return this;
  }

  /** Runs of the file at `modelPath` fail with this error from now on (`undefined`: they succeed again). */
  failingRuns(modelPath: string, error: (() => Error) | undefined): this {
    if (error) this.runFailures.set(modelPath, error);
    else this.runFailures.delete(modelPath);
    return this;
  }

  /** What is loaded under `key` (undefined when nothing is). */
  loaded(key: RuntimeKey | string): Loaded | undefined {
    return this.instances.get(key.toString());
  }

  /** The keys loaded now, as text, sorted. */
  loadedKeys(): string[] {
    return [...this.instances.keys()].sort();
  }

  async load(key: RuntimeKey, modelPath: string, options: RuntimeOptions): Promise<LoadedModel> {
    if (this.instances.has(key.toString())) throw new Error(`'${key}' is already loaded`);
    const failure = this.loadFailures.get(modelPath);
    if (failure !== undefined) throw new Error(`Load model from ${modelPath} failed: ${failure}`);
    this.instances.set(key.toString(), { key, modelPath, options, warmedUpWith: [] });
    return { signature: this.signatures.get(modelPath) ?? ECHO_SIGNATURE, executionProvider: 'cpu' };
  }

  checkInputs(): void {}

  async run(key: RuntimeKey, members: BatchMembers, outputNames: readonly string[], _options?: EngineRunOptions): Promise<EngineRun> {
    const loaded = this.instances.get(key.toString());
    if (!loaded) throw new DomainError('REGISTRY.VERSION_NOT_READY', `'${key}' is not loaded`);
    const failure = this.runFailures.get(loaded.modelPath);
    if (failure) throw failure();
    const factor = this.factors.get(loaded.modelPath) ?? 1;
    const first = mergeInputs(members)[0]!;
    const data = Float32Array.from(first.data as Float32Array, (value) => value * factor);
    const outputs = outputNames.map((name) => ({ name, datatype: first.datatype, shape: [...first.shape], data: data.slice() }));
    return { outputs: splitOutputs(outputs, members.map((inputs) => batchRows(inputs))), computeMicros: 10, inputMicros: 0, outputMicros: 0 };
  }

  concurrency(key: RuntimeKey): number {
    return this.instances.get(key.toString())?.options.instanceCount ?? 0;
  }

  async warmUp(key: RuntimeKey, samples: readonly WarmupSample[]): Promise<void> {
    const loaded = this.instances.get(key.toString());
    if (!loaded) throw new DomainError('REGISTRY.VERSION_NOT_READY', `'${key}' is not loaded`);
    const failure = this.warmupFailures.get(loaded.modelPath);
    if (failure !== undefined) throw new Error(`warm-up sample '${samples[0]?.name ?? ''}' failed: ${failure}`);
    loaded.warmedUpWith = samples;
  }

  async unload(key: RuntimeKey): Promise<void> {
    this.instances.delete(key.toString());
  }

  status(): InstanceStatus[] {
    return [...this.instances.values()].map(({ key, options }) => ({
      key,
      instances: options.instanceCount,
      busy: 0,
      queued: 0,
      executionProvider: 'cpu',
      lostInstances: 0,
      restartedInstances: 0,
    }));
  }
}
