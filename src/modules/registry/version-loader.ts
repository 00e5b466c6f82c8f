import { Injectable, Logger } from '@nestjs/common';
import { InferenceEngine } from '../../domain/inference/inference-engine.port.js';
import type { Tensor } from '../../domain/inference/tensor.js';
import { completeModelConfig, runtimeOptionsOf, servedSignature, type DeclaredModelConfig, type ModelConfig } from '../../domain/registry/model-config.js';
import { ModelRepository } from '../../domain/registry/model-repository.port.js';
import type { Model } from '../../domain/registry/model.js';
import { TYPED_ARRAY_OF } from '../../domain/shared/datatype.js';
import { DomainError } from '../../domain/shared/domain-error.js';
import { AppConfig } from '../../infra/config/app-config.js';

/**
 * Loads one version into the runtime and warms it up before it can take traffic: a run on a
 * zero-filled input (one row, every variable dimension 1). A version that fails either is
 * UNAVAILABLE with the reason, nothing of it stays loaded, and LOAD_FAILED names why. A warm-up
 * that has not ended within MODEL_WARMUP_TIMEOUT_MS fails so: its run is stopped (the engine
 * kills the instance computing it), so that a model that never ends a run never hangs a load, a
 * reload or an upload.
 */
@Injectable()
export class VersionLoader {
  private readonly logger = new Logger(VersionLoader.name);

  constructor(
    private readonly repository: ModelRepository,
    private readonly engine: InferenceEngine,
    private readonly config: AppConfig,
  ) {}

  async load(model: Model, number: number, declared: DeclaredModelConfig): Promise<void> {
    const version = model.startLoading(number);
    let loaded = false;
    try {
      const fileSha256 = await this.repository.sha256(version.path);
      const { signature, executionProvider } = await this.engine.load(version.key, version.path, runtimeOptionsOf(declared));
      loaded = true;
      const config = completeModelConfig(version.modelName, declared, signature);
      await this.warmUp(version.key, config);
      model.finishLoading(number, { config, executionProvider, fileSha256, loadedAt: new Date() });
      this.logger.log(`model '${model.name}' version ${number} is READY`);
    } catch (error) {
      if (loaded) await this.engine.unload(version.key);
      const reason = (error as Error).message;
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
  async reload(model: Model, number: number, declared: DeclaredModelConfig): Promise<string> {
    const version = model.version(number);
    const oldKey = version.key;
    const key = version.nextKey;
    let loaded = false;
    try {
      const fileSha256 = await this.repository.sha256(version.path);
      const { signature, executionProvider } = await this.engine.load(key, version.path, runtimeOptionsOf(declared));
      loaded = true;
      const config = completeModelConfig(version.modelName, declared, signature);
      await this.warmUp(key, config);
      model.finishReloading(number, { config, executionProvider, fileSha256, loadedAt: new Date() }, key);
      this.logger.log(`model '${model.name}' version ${number} is READY with its new configuration`);
      return oldKey;
    } catch (error) {
      if (loaded) await this.engine.unload(key);
      throw new DomainError('REGISTRY.LOAD_FAILED', `model '${model.name}' version ${number} failed to reload, and keeps serving as before: ${(error as Error).message}`);
    }
  }

  /**
   * Checks that a model file loads and warms up with the model's configuration, in an instance of
   * its own that is released after; the error names why it does not.
   */
  async check(modelName: string, modelPath: string, key: string, declared: DeclaredModelConfig): Promise<void> {
    try {
      const { signature } = await this.engine.load(key, modelPath, runtimeOptionsOf({ ...declared, instanceCount: 1 }));
      await this.warmUp(key, completeModelConfig(modelName, declared, signature));
    } finally {
      await this.engine.unload(key);
    }
  }

  private async warmUp(key: string, config: ModelConfig): Promise<void> {
    const signature = servedSignature(config);
    const inputs: Tensor[] = signature.inputs.map((spec) => {
      const shape = spec.shape.map((dim) => (dim === -1 ? 1 : dim));
      const count = shape.reduce((a, b) => a * b, 1);
      const data = spec.datatype === 'BYTES' ? new Array<string>(count).fill('') : new TYPED_ARRAY_OF[spec.datatype](count);
      return { name: spec.name, datatype: spec.datatype, shape, data };
    });
    const timeLimitMs = this.config.MODEL_WARMUP_TIMEOUT_MS;
    try {
      await this.engine.run(key, inputs, signature.outputs.map((spec) => spec.name), { timeLimitMs });
    } catch (error) {
      if (error instanceof DomainError && error.code === 'INFERENCE.DEADLINE_EXCEEDED') {
        throw new Error(`the warm-up did not end within MODEL_WARMUP_TIMEOUT_MS (${timeLimitMs} ms): its run was stopped`);
      }
      throw new Error(`the warm-up run failed: ${(error as Error).message}`);
    }
  }
}
