import { Injectable, Logger } from '@nestjs/common';
import type { DeclaredModelConfig } from '../../../domain/registry/model-config.js';
import { ModelConfigLimits } from '../../../domain/registry/model-config-limits.js';
import { ModelRepository, type ModelDirectory } from '../../../domain/registry/model-repository.port.js';
import type { ModelState } from '../../../domain/registry/model-state-store.port.js';
import { ModelVersion } from '../../../domain/registry/model-version.js';
import { Model } from '../../../domain/registry/model.js';
import { DEFAULT_VERSION_POLICY, selectVersions } from '../../../domain/registry/version-policy.js';
import { parseModelConfig } from '../../../infra/model-repository/model-config.schema.js';
import { ModelRegistry } from '../model-registry.js';
import { ModelStates } from '../model-states.js';
import { VersionLoader } from '../version-loader.js';

/**
 * Loads every model of the repository at start. A model with a saved state comes back as it was
 * left: the versions that were loaded, its default version, its configuration override. Any other
 * model loads the versions its policy selects. A model that fails is UNAVAILABLE with its reason;
 * the others load regardless.
 */
@Injectable()
export class LoadModelRepositoryHandler {
  private readonly logger = new Logger(LoadModelRepositoryHandler.name);

  constructor(
    private readonly repository: ModelRepository,
    private readonly registry: ModelRegistry,
    private readonly loader: VersionLoader,
    private readonly states: ModelStates,
    private readonly limits: ModelConfigLimits,
  ) {}

  async execute(): Promise<void> {
    try {
      const saved = await this.states.restore();
      for (const path of await this.repository.removeAbandonedUploads()) this.logger.warn(`removed what an interrupted upload left: ${path}`);
      const directories = await this.repository.scan();
      await Promise.all(directories.map((directory) => this.loadModel(directory, saved.get(directory.name))));
    } finally {
      this.registry.finishLoading();
    }
  }

  private async loadModel(directory: ModelDirectory, saved: ModelState | undefined): Promise<void> {
    const config = withinLimits(configOf(directory, saved), this.limits);
    const declared: DeclaredModelConfig = config.ok ? config.declared : {};
    const available = directory.versions.map((v) => v.version);
    const chosen = new Set(saved ? saved.loadedVersions.filter((v) => available.includes(v)) : selectVersions(declared.versionPolicy ?? DEFAULT_VERSION_POLICY, available));
    const versions = directory.versions.filter((v) => chosen.has(v.version)).map((v) => ModelVersion.register(directory.name, v.version, v.modelPath));
    const problem =
      directory.versions.length > 0 ? '' : config.ok ? 'no version directory (a positive integer such as 1/) holds a model' : config.reason;
    const model = Model.discover(directory.name, versions, problem);
    this.registry.add(model);
    if (problem) this.logger.warn(`model '${directory.name}' is UNAVAILABLE: ${problem}`);
    await Promise.all(
      model.versions.map(async (version) => {
        if (!config.ok) {
          model.failLoading(version.version, config.reason, new Date());
          this.logger.error(`model '${model.name}' version ${version.version} is UNAVAILABLE: ${config.reason}`);
          return;
        }
        await this.loader.load(model, version.version, declared).catch(() => undefined); // logged, and the version says why
      }),
    );
    if (saved?.defaultVersion !== undefined && model.readyVersions.some((v) => v.version === saved.defaultVersion)) {
      model.makeDefault(saved.defaultVersion, new Date());
    }
    this.states.publish(model);
  }
}

/** The model's configuration: the override saved with it, else its config file. */
function configOf(directory: ModelDirectory, saved: ModelState | undefined): ModelDirectory['config'] {
  if (saved?.configOverride === undefined) return directory.config;
  try {
    return { ok: true, declared: parseModelConfig(saved.configOverride) };
  } catch (error) {
    return { ok: false, reason: `the saved configuration override is invalid: ${(error as Error).message}` };
  }
}

/** A configuration past the host's limits is refused like an invalid one: its versions are UNAVAILABLE, saying why. */
function withinLimits(config: ModelDirectory['config'], limits: ModelConfigLimits): ModelDirectory['config'] {
  if (!config.ok) return config;
  try {
    limits.check(config.declared);
    return config;
  } catch (error) {
    return { ok: false, reason: `config.json: ${(error as Error).message}` };
  }
}
