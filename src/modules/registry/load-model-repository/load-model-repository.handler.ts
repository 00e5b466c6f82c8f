import { Injectable, Logger } from '@nestjs/common';
import { InferenceEngine } from '../../../domain/inference/inference-engine.port.js';
import { completeModelConfig, runtimeOptionsOf, type DeclaredModelConfig } from '../../../domain/registry/model-config.js';
import { ModelRepository, type ModelDirectory } from '../../../domain/registry/model-repository.port.js';
import { ModelVersion } from '../../../domain/registry/model-version.js';
import { Model } from '../../../domain/registry/model.js';
import { DEFAULT_VERSION_POLICY, selectVersions } from '../../../domain/registry/version-policy.js';
import { ModelRegistry } from '../model-registry.js';

/**
 * Loads every model of the repository at start: the versions its policy selects, each in its own
 * runtime instances. A model that fails is UNAVAILABLE with its reason; the others load regardless.
 */
@Injectable()
export class LoadModelRepositoryHandler {
  private readonly logger = new Logger(LoadModelRepositoryHandler.name);

  constructor(
    private readonly repository: ModelRepository,
    private readonly engine: InferenceEngine,
    private readonly registry: ModelRegistry,
  ) {}

  async execute(): Promise<void> {
    try {
      const directories = await this.repository.scan();
      await Promise.all(directories.map((directory) => this.loadModel(directory)));
    } finally {
      this.registry.finishLoading();
    }
  }

  private async loadModel(directory: ModelDirectory): Promise<void> {
    const declared: DeclaredModelConfig = directory.config.ok ? directory.config.declared : {};
    const chosen = new Set(selectVersions(declared.versionPolicy ?? DEFAULT_VERSION_POLICY, directory.versions.map((v) => v.version)));
    const versions = directory.versions
      .filter((v) => chosen.has(v.version))
      .map((v) => ModelVersion.register(directory.name, v.version, v.modelPath));
    const problem = directory.versions.length === 0 ? 'no version directory (a positive integer such as 1/) holds a model' : '';
    const model = Model.discover(directory.name, versions, problem);
    this.registry.add(model);
    if (problem) this.logger.warn(`model '${directory.name}' is UNAVAILABLE: ${problem}`);
    await Promise.all(
      model.versions.map((version) =>
        directory.config.ok ? this.loadVersion(model, version, declared) : this.fail(model, version, directory.config.reason),
      ),
    );
  }

  private async loadVersion(model: Model, version: ModelVersion, declared: DeclaredModelConfig): Promise<void> {
    model.startLoading(version.version);
    let loaded = false;
    try {
      const fileSha256 = await this.repository.sha256(version.path);
      const { signature, executionProvider } = await this.engine.load(version.key, version.path, runtimeOptionsOf(declared));
      loaded = true;
      const config = completeModelConfig(version.modelName, declared, signature);
      model.finishLoading(version.version, { config, executionProvider, fileSha256, loadedAt: new Date() });
      this.logger.log(`model '${version.modelName}' version ${version.version} is READY`);
    } catch (error) {
      if (loaded) await this.engine.unload(version.key);
      this.fail(model, version, (error as Error).message);
    }
  }

  private fail(model: Model, version: ModelVersion, reason: string): void {
    model.failLoading(version.version, reason, new Date());
    this.logger.error(`model '${version.modelName}' version ${version.version} is UNAVAILABLE: ${reason}`);
  }
}
