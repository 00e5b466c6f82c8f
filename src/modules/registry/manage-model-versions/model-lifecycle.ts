import { Injectable } from '@nestjs/common';
import { InferenceEngine } from '../../../domain/inference/inference-engine.port.js';
import { createHash } from 'node:crypto';
import type { DeclaredModelConfig } from '../../../domain/registry/model-config.js';
import type { RolloutSnapshot } from '../../../domain/rollout/rollout.js';
import { ModelRepository, type ModelDirectory } from '../../../domain/registry/model-repository.port.js';
import { ModelVersion } from '../../../domain/registry/model-version.js';
import { Model } from '../../../domain/registry/model.js';
import { DEFAULT_VERSION_POLICY, selectVersions } from '../../../domain/registry/version-policy.js';
import { VersionTraffic } from '../../../domain/registry/version-traffic.port.js';
import { DomainError } from '../../../domain/shared/domain-error.js';
import { parseModelConfig } from '../../../infra/model-repository/model-config.schema.js';
import { ModelRegistry } from '../model-registry.js';
import { ModelStates } from '../model-states.js';
import { VersionLoader } from '../version-loader.js';

export interface SwapResult {
  readonly from?: number;
  readonly to: number;
}

/**
 * What operators do to the versions of a model, live: load, unload, make a version the default
 * (the hot swap), and Triton's model-level load and unload. The operations on one model run one
 * after another, each to its end (no two interleave, none deadlocks: a queue per model). After
 * each, the model's state is saved and its events published.
 */
@Injectable()
export class ModelLifecycle {
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(
    private readonly registry: ModelRegistry,
    private readonly repository: ModelRepository,
    private readonly engine: InferenceEngine,
    private readonly loader: VersionLoader,
    private readonly traffic: VersionTraffic,
    private readonly states: ModelStates,
  ) {}

  /** Loads a version (found in the repository now, e.g. just uploaded); a READY one stays as it is. */
  loadVersion(modelName: string, number: number): Promise<ModelVersion> {
    return this.serialized(modelName, async () => {
      const { model, directory } = await this.modelWithDirectory(modelName);
      const version = this.versionIn(model, directory, number);
      if (!version.isReady) await this.loadOrSave(model, number, this.declaredOf(directory));
      await this.states.save(model, { unloadedVersions: this.unloadedWithout(model.name, number) });
      return version;
    });
  }

  /**
   * Adds a new version from uploaded model-file bytes. It becomes visible in the repository only
   * after it loaded (with the model's configuration) in a runtime instance of its own, which is
   * then released: the version is not served until an operator loads it or makes it the default.
   */
  uploadVersion(modelName: string, number: number, bytes: Uint8Array): Promise<{ sha256: string }> {
    return this.serialized(modelName, async () => {
      const directory = await this.repository.scanModel(modelName);
      const declared = directory ? this.declaredOf(directory) : {};
      await this.repository.addVersion(modelName, number, bytes, async (modelPath) => {
        try {
          await this.loader.check(modelName, modelPath, `${modelName}/${number}#upload`, declared);
        } catch (error) {
          // The staging path is the server's business, not the client's.
          const reason = (error as Error).message.split(modelPath).join('model.onnx');
          throw new DomainError('REGISTRY.LOAD_FAILED', `the uploaded model does not load: ${reason}`);
        }
      });
      // Saved as present and not loaded: a restart does not start serving it either.
      const { model, directory: added } = await this.modelWithDirectory(modelName);
      this.versionIn(model, added, number);
      await this.states.save(model);
      return { sha256: createHash('sha256').update(bytes).digest('hex') };
    });
  }

  /** Drains a version (every request it accepted is answered), then releases it. */
  unloadVersion(modelName: string, number: number, force = false): Promise<void> {
    return this.serialized(modelName, async () => {
      const model = this.registry.get(modelName);
      await this.unload(model, number, force);
      await this.states.save(model, { unloadedVersions: [...this.unloadedWithout(model.name, number), number] });
    });
  }

  /**
   * The hot swap: loads and warms up the version if it is not READY (on failure the old one keeps
   * serving and the error is returned), switches routing to it atomically, then drains and
   * unloads the versions the version policy no longer keeps.
   */
  makeDefault(modelName: string, number: number): Promise<SwapResult> {
    return this.serialized(modelName, async () => {
      const { model, directory } = await this.modelWithDirectory(modelName);
      const declared = this.declaredOf(directory);
      const version = this.versionIn(model, directory, number);
      const from = model.servingVersion()?.version;
      const pinned = model.defaultVersion;
      // Pin what serves now, so that the new version, once READY, takes no traffic before the switch.
      if (from !== undefined) model.makeDefault(from, new Date());
      if (!version.isReady) {
        try {
          await this.loader.load(model, number, declared);
        } catch (error) {
          if (pinned === undefined) model.unpinDefault(new Date());
          await this.states.save(model).catch(() => undefined); // the load's error is the one to report
          throw error;
        }
      }
      model.makeDefault(number, new Date());
      await this.states.save(model, { unloadedVersions: this.unloadedWithout(model.name, number) });
      const retired = versionsToRetire(declared, model, number);
      for (const old of retired) await this.unload(model, old, false);
      if (retired.length > 0) await this.states.save(model);
      return { from, to: number };
    });
  }

  /**
   * Triton's repository load: the model (re)read from the repository, with an optional
   * configuration override (config.json text), and the versions its policy selects loaded.
   * Versions already READY with the same configuration stay; with a new one they are reloaded.
   */
  loadModel(modelName: string, configOverride?: string): Promise<Model> {
    return this.serialized(modelName, async () => {
      if (configOverride !== undefined) parseOverride(modelName, configOverride);
      const { model, directory } = await this.modelWithDirectory(modelName);
      // Without an override, Triton's load goes back to the model's own config file.
      const declared = configOverride !== undefined ? parseOverride(modelName, configOverride) : fileConfigOf(directory);
      const wanted = selectVersions(declared.versionPolicy ?? DEFAULT_VERSION_POLICY, directory.versions.map((v) => v.version));
      if (wanted.length === 0) {
        // Triton refuses such a load and keeps serving what it serves.
        throw new DomainError('REGISTRY.LOAD_FAILED', `model '${modelName}': its version policy selects none of the versions in the repository (${directory.versions.map((v) => v.version).join(', ') || 'none'})`);
      }
      // A new override, or dropping one, changes the configuration: READY versions reload beside themselves.
      const reloading = configOverride !== undefined || this.states.stateOf(modelName)?.configOverride !== undefined;
      for (const number of wanted) {
        const version = this.versionIn(model, directory, number);
        if (version.isReady && reloading) {
          const oldKey = await this.loader.reload(model, number, declared);
          await this.traffic.drain(oldKey);
          await this.engine.unload(oldKey);
        } else if (!version.isReady) {
          await this.loader.load(model, number, declared);
        }
      }
      for (const version of model.readyVersions.filter((v) => !wanted.includes(v.version))) await this.unload(model, version.version, true);
      await this.states.save(model, { configOverride, unloadedVersions: [] });
      return model;
    });
  }

  /**
   * Saves a model's rollout with the rest of its state, in the model's queue of operations (so it
   * never interleaves with a load or a swap writing the same state).
   */
  saveRollout(modelName: string, rollout: RolloutSnapshot | undefined): Promise<void> {
    return this.serialized(modelName, () => this.states.save(this.registry.get(modelName), { rollout }));
  }

  /** Triton's repository unload: every version of the model, drained then released. */
  unloadModel(modelName: string): Promise<void> {
    return this.serialized(modelName, async () => {
      const model = this.registry.get(modelName);
      const versions = model.readyVersions.map((v) => v.version);
      for (const number of versions) await this.unload(model, number, true);
      await this.states.save(model, { unloadedVersions: versions });
    });
  }

  private async unload(model: Model, number: number, force: boolean): Promise<void> {
    const version = model.startUnloading(number, new Date(), { force });
    try {
      await this.traffic.drain(version.key);
      await this.engine.unload(version.key);
    } finally {
      // The engine forgets the instance before releasing it: even a failed release leaves nothing to serve.
      model.finishUnloading(number, new Date());
    }
  }

  /**
   * Loads; when the load fails, saves the model as it now is (the failed version is UNAVAILABLE),
   * which publishes its failure event, then throws the load's error.
   */
  private async loadOrSave(model: Model, number: number, declared: DeclaredModelConfig): Promise<void> {
    try {
      await this.loader.load(model, number, declared);
    } catch (error) {
      await this.states.save(model).catch(() => undefined); // the load's error is the one to report
      throw error;
    }
  }

  /** The model as the repository holds it now; a model new to the repository joins the registry. */
  private async modelWithDirectory(modelName: string): Promise<{ model: Model; directory: ModelDirectory }> {
    const directory = await this.repository.scanModel(modelName);
    if (!directory) throw new DomainError('REGISTRY.MODEL_NOT_FOUND', `the model repository has no model '${modelName}'`);
    let model = this.registry.find(modelName);
    if (!model) {
      model = Model.discover(modelName, []);
      this.registry.add(model);
    }
    return { model, directory };
  }

  /** The model's version `number`, registered from the repository if the model did not have it yet. */
  private versionIn(model: Model, directory: ModelDirectory, number: number): ModelVersion {
    const inModel = model.versions.find((v) => v.version === number);
    if (inModel) return inModel;
    const onDisk = directory.versions.find((v) => v.version === number);
    if (!onDisk) {
      const present = directory.versions.map((v) => v.version).join(', ') || 'none';
      throw new DomainError('REGISTRY.VERSION_NOT_FOUND', `model '${model.name}' has no version ${number} in the repository (versions: ${present})`);
    }
    const version = ModelVersion.register(model.name, number, onDisk.modelPath);
    model.addVersion(version);
    return version;
  }

  /** The configuration the model serves with: its saved override, else its config file. */
  private declaredOf(directory: ModelDirectory): DeclaredModelConfig {
    const override = this.states.stateOf(directory.name)?.configOverride;
    return override !== undefined ? parseOverride(directory.name, override) : fileConfigOf(directory);
  }

  private unloadedWithout(modelName: string, number: number): number[] {
    return (this.states.stateOf(modelName)?.unloadedVersions ?? []).filter((v) => v !== number);
  }

  private serialized<T>(modelName: string, operation: () => Promise<T>): Promise<T> {
    if (this.registry.isLoading) {
      // Start-up loads models outside this queue; an admin change now could race with it.
      return Promise.reject(new DomainError('SERVER.NOT_READY', 'the model repository is still loading: admin changes are accepted once it has loaded (GET /health says so); retry in a moment'));
    }
    const previous = this.queues.get(modelName) ?? Promise.resolve();
    const result = previous.then(operation, operation);
    const settled = result.then(
      () => undefined,
      () => undefined,
    );
    this.queues.set(modelName, settled);
    void settled.then(() => {
      if (this.queues.get(modelName) === settled) this.queues.delete(modelName);
    });
    return result;
  }
}

/**
 * After a swap to `newDefault`, the READY versions the policy no longer keeps: latest(n) keeps the
 * new default and the n-1 highest others, specific keeps the listed ones, all keeps every one.
 */
function versionsToRetire(declared: DeclaredModelConfig, model: Model, newDefault: number): number[] {
  const policy = declared.versionPolicy ?? DEFAULT_VERSION_POLICY;
  const others = model.readyVersions.map((v) => v.version).filter((v) => v !== newDefault);
  const kept = policy.kind === 'latest' ? selectVersions(policy, others).slice(0, policy.numVersions - 1) : selectVersions(policy, others);
  return others.filter((v) => !kept.includes(v));
}

function fileConfigOf(directory: ModelDirectory): DeclaredModelConfig {
  if (!directory.config.ok) throw new DomainError('REGISTRY.INVALID_CONFIG', `model '${directory.name}': ${directory.config.reason}`);
  return directory.config.declared;
}

function parseOverride(modelName: string, text: string): DeclaredModelConfig {
  try {
    return parseModelConfig(text);
  } catch (error) {
    // "failed to load" is Triton's wording, which NVIDIA's model-control examples look for.
    throw new DomainError('REGISTRY.INVALID_CONFIG', `failed to load '${modelName}': the configuration override is invalid: ${(error as Error).message}`);
  }
}
