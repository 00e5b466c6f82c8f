import { Injectable, Logger } from '@nestjs/common';
import { dirname } from 'node:path';
import { GenerationEngine } from '../../domain/generation/generation-engine.port.js';
import { TextTokenizers } from '../../domain/generation/text-tokenizer.port.js';
import { completeGenerationConfig, GENERATIVE_SIGNATURE, isGenerativeBackend } from '../../domain/registry/generative-model.js';
import { InferenceEngine, type WarmupSample, type WarmupTensor } from '../../domain/inference/inference-engine.port.js';
import { completeModelConfig, labelFilesOf, runtimeOptionsOf, type DeclaredModelConfig, type ModelConfig, type ModelWarmup } from '../../domain/registry/model-config.js';
import { ModelBackends, type ModelBackend } from '../../domain/registry/model-backend.js';
import { ModelRepository } from '../../domain/registry/model-repository.port.js';
import type { Model } from '../../domain/registry/model.js';
import { DomainError } from '../../domain/shared/domain-error.js';
import type { RuntimeKey } from '../../domain/shared/model-version-id.js';
import { AppConfig } from '../../infra/config/app-config.js';

/**
 * Loads one version into the runtime: its sessions created and its signature read, as Triton does.
 * A version runs nothing before it serves unless its configuration asks for it (`model_warmup`):
 * no input is ever made up, since a real model may refuse any made-up one. The samples asked for
 * run on every instance before the version can take traffic. A version that fails to load or to
 * warm up is UNAVAILABLE with the reason, nothing of it stays loaded, and LOAD_FAILED names why.
 */
@Injectable()
export class VersionLoader {
  private readonly logger = new Logger(VersionLoader.name);

  constructor(
    private readonly repository: ModelRepository,
    private readonly engine: InferenceEngine,
    private readonly config: AppConfig,
    private readonly backends: ModelBackends,
    private readonly generationEngine: GenerationEngine,
    private readonly tokenizers: TextTokenizers,
  ) {}

  /**
   * Loads one instance of a version under `key` and completes its configuration: an ONNX model
   * through the inference engine, a generative one (backend onnx_generative) through the generation
   * engine, with its tokenizer read from the version directory. Nothing stays loaded when it fails.
   */
  private async loadInstance(
    backend: ModelBackend,
    modelName: string,
    key: RuntimeKey,
    modelPath: string,
    declared: DeclaredModelConfig,
    labels: ReadonlyMap<string, readonly string[]>,
  ): Promise<{ config: ModelConfig; executionProvider: string }> {
    if (isGenerativeBackend(backend.name)) {
      const versionDir = dirname(modelPath);
      const model = await this.generationEngine.load(key, versionDir, runtimeOptionsOf(declared));
      try {
        await this.tokenizers.load(key.toString(), versionDir);
        const generation = completeGenerationConfig(declared.generation, {
          maxNumSeqs: this.config.GENERATION_MAX_NUM_SEQS,
          kvCacheBytes: this.config.GENERATION_KV_CACHE_BYTES,
          maxPrefillTokensPerStep: this.config.GENERATION_MAX_PREFILL_TOKENS_PER_STEP,
          streamBufferTokens: this.config.GENERATION_STREAM_BUFFER_TOKENS,
          overlapSteps: this.config.GENERATION_OVERLAP_STEPS,
        }, model);
        const config = completeModelConfig(backend, modelName, { ...declared, maxBatchSize: 0 }, GENERATIVE_SIGNATURE);
        return { config: { ...config, generation }, executionProvider: model.executionProvider };
      } catch (error) {
        await this.release(key);
        throw error;
      }
    }
    const { signature, executionProvider } = await this.engine.load(key, modelPath, runtimeOptionsOf(declared));
    try {
      return { config: completeModelConfig(backend, modelName, declared, signature, labels), executionProvider };
    } catch (error) {
      await this.engine.unload(key);
      throw error;
    }
  }

  /** Releases an instance loaded under `key`, whichever engine holds it (each ignores keys it does not hold). */
  async release(key: RuntimeKey): Promise<void> {
    this.tokenizers.release(key.toString());
    await Promise.all([this.engine.unload(key), this.generationEngine.unload(key)]);
  }

  async load(model: Model, number: number, declared: DeclaredModelConfig): Promise<void> {
    const version = model.startLoading(number);
    let loaded = false;
    try {
      const backend = this.backends.forConfig(declared);
      const fileSha256 = await this.repository.sha256(version.path);
      const labels = await this.readLabels(version.modelName, declared);
      const { config, executionProvider } = await this.loadInstance(backend, version.modelName, version.key, version.path, declared, labels);
      loaded = true;
      await this.warmUp(model.name, version.key, config);
      model.finishLoading(number, { config, executionProvider, fileSha256, loadedAt: new Date() });
      this.logger.log(`model '${model.name}' version ${number} is READY`);
    } catch (error) {
      if (loaded) await this.release(version.key);
      const reason = this.repository.withoutPaths((error as Error).message);
      model.failLoading(number, reason, new Date());
      this.logger.error(`model '${model.name}' version ${number} is UNAVAILABLE: ${reason}`);
      throw new DomainError('REGISTRY.LOAD_FAILED', `model '${model.name}' version ${number} failed to load: ${reason}`);
    }
  }

  /**
   * Loads a READY version again with another configuration, beside the instance serving it, and
   * switches the version to the new instance once it is warm; returns the old instance's key, for
   * the caller to drain and release. On failure the version keeps serving as it was.
   */
  async reload(model: Model, number: number, declared: DeclaredModelConfig): Promise<RuntimeKey> {
    const version = model.version(number);
    const oldKey = version.key;
    const key = version.nextKey;
    let loaded = false;
    try {
      const backend = this.backends.forConfig(declared);
      const fileSha256 = await this.repository.sha256(version.path);
      const labels = await this.readLabels(version.modelName, declared);
      const { config, executionProvider } = await this.loadInstance(backend, version.modelName, key, version.path, declared, labels);
      loaded = true;
      await this.warmUp(model.name, key, config);
      model.finishReloading(number, { config, executionProvider, fileSha256, loadedAt: new Date() }, key);
      this.logger.log(`model '${model.name}' version ${number} is READY with its new configuration`);
      return oldKey;
    } catch (error) {
      if (loaded) await this.release(key);
      throw new DomainError('REGISTRY.LOAD_FAILED', `model '${model.name}' version ${number} failed to reload, and keeps serving as before: ${this.repository.withoutPaths((error as Error).message)}`);
    }
  }

  /**
   * Checks that a model file loads with the model's configuration (and runs its warm-up samples,
   * if it has any), in an instance of its own that is released after; the error names why it does not.
   */
  async check(modelPath: string, key: RuntimeKey, declared: DeclaredModelConfig): Promise<void> {
    const modelName = key.modelName;
    const backend = this.backends.forConfig(declared);
    const labels = await this.readLabels(modelName, declared);
    try {
      const { config } = await this.loadInstance(backend, modelName, key, modelPath, { ...declared, instanceCount: 1 }, labels);
      await this.warmUp(modelName, key, config);
    } finally {
      await this.release(key);
    }
  }

  /** Runs the configured warm-up samples (Triton's `model_warmup`) on every instance; a sample of batch_size 0 is skipped, as in Triton. */
  private async warmUp(modelName: string, key: RuntimeKey, config: ModelConfig): Promise<void> {
    const samples = config.modelWarmup.filter((sample) => sample.batchSize > 0);
    if (samples.length === 0) return;
    // Bounded: a sample that never ends (a Loop whose trip count it sets) must not hang a load, a reload or an upload.
    await this.engine.warmUp(key, await Promise.all(samples.map((sample) => this.warmupSample(modelName, config, sample))), this.config.MODEL_WARMUP_TIMEOUT_MS);
    this.logger.log(`${key}: ran ${samples.length} warm-up sample(s) on each instance`);
  }

  private async warmupSample(modelName: string, config: ModelConfig, sample: ModelWarmup): Promise<WarmupSample> {
    const batching = config.maxBatchSize > 0;
    const inputs = sample.inputs.map(async (input): Promise<WarmupTensor> => ({
      name: input.name,
      datatype: input.datatype,
      // Each row is the sample's data: Triton duplicates the inputs to make batch_size rows.
      shape: batching ? [sample.batchSize, ...input.dims] : [...input.dims],
      rows: batching ? sample.batchSize : 1,
      values: input.data.kind === 'file' ? { kind: 'file', file: input.data.file, path: await this.repository.warmupFilePath(modelName, input.data.file) } : input.data,
    }));
    return { name: sample.name, inputs: await Promise.all(inputs), runs: Math.max(sample.count, 1) };
  }

  /** The label files the declared outputs name (Triton's `label_filename`), read from the model's directory. */
  private async readLabels(modelName: string, declared: DeclaredModelConfig): Promise<Map<string, readonly string[]>> {
    const files = labelFilesOf(declared);
    return new Map(await Promise.all(files.map(async (file) => [file, await this.repository.readLabels(modelName, file)] as const)));
  }
}
