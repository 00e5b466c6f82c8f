import { Injectable, Logger } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { dirname } from 'node:path';
import type { DeclaredModelConfig } from '../../../domain/registry/model-config.js';
import { ModelConfigLimits } from '../../../domain/registry/model-config-limits.js';
import { ModelRepository, type ModelDirectory } from '../../../domain/registry/model-repository.port.js';
import type { StoredModelState } from '../../../domain/registry/model-state-store.port.js';
import { ModelVersion } from '../../../domain/registry/model-version.js';
import { Model } from '../../../domain/registry/model.js';
import { DEFAULT_VERSION_POLICY, selectVersions } from '../../../domain/registry/version-policy.js';
import { VersionTraffic } from '../../../domain/registry/version-traffic.port.js';
import { DomainError, notMade } from '../../../domain/shared/domain-error.js';
import { ModelVersionId, RuntimeKey } from '../../../domain/shared/model-version-id.js';
import { OperationLocks } from '../../../domain/shared/operation-locks.port.js';
import { ModelRegistry } from '../model-registry.js';
import { ModelStates } from '../model-states.js';
import { VersionLoader } from '../version-loader.js';
import { PerKeyQueue } from '../../../domain/shared/per-key-queue.js';

export interface SwapResult {
  readonly from?: number;
  readonly to: number;
}

/**
 * What operators do to the versions of a model, live: load, unload, make a version the default
 * (the hot swap), and Triton's model-level load and unload. The operations on one model run one
 * after another, each to its end (no two interleave, none deadlocks: a queue per model, and the
 * model's lock across replicas sharing a state store, each first catching up with the stored
 * state). Each
 * change is saved before it takes effect, or undone when its save fails, so that what an answer
 * says is what serves, now and after a restart (REGISTRY.STATE_NOT_SAVED says what was undone);
 * the model's events are published after.
 */
@Injectable()
export class ModelLifecycle {
  private readonly logger = new Logger('ModelLifecycle');
  /** One change of a model at a time on this server. */
  private readonly queues = new PerKeyQueue();

  constructor(
    private readonly registry: ModelRegistry,
    private readonly repository: ModelRepository,
    private readonly loader: VersionLoader,
    private readonly traffic: VersionTraffic,
    private readonly states: ModelStates,
    private readonly limits: ModelConfigLimits,
    private readonly locks: OperationLocks,
  ) {}

  /**
   * Loads a version (found in the repository now, e.g. just uploaded); a READY one stays as it is.
   * Either way it is now explicitly loaded: it stays loaded until an operator unloads it, whatever
   * the version policy would choose (a later swap does not retire it). When the change cannot be
   * saved, a version this call loaded is unloaded again.
   */
  loadVersion(modelName: string, number: number): Promise<ModelVersion> {
    return this.serialized(modelName, `the load of version ${number} of model '${modelName}'`, async () => {
      const { model, directory } = await this.modelWithDirectory(modelName);
      const version = this.versionIn(model, directory, number);
      const loadedHere = !version.isReady;
      if (loadedHere) await this.loadOrSave(model, number, this.declaredOf(model, directory));
      const before = model.keepLoaded(number);
      try {
        await this.states.save(model);
      } catch (error) {
        model.restoreIntents(before);
        if (loadedHere) await this.unload(model, number, true);
        this.states.publish(model);
        throw notMade(`the load of version ${number} of model '${modelName}'`, error, loadedHere ? 'the version was unloaded again' : 'nothing changed');
      }
      return version;
    });
  }

  /**
   * Adds a new version from uploaded model-file bytes. It becomes visible in the repository only
   * after it loaded (with the model's configuration) in a runtime instance of its own, which is
   * then released: the version is not served until an operator loads it or makes it the default.
   * A model without a saved state has it saved first (what serves now), so that a restart does not
   * start serving the new version either; when that save fails, nothing is written.
   */
  uploadVersion(modelName: string, number: number, bytes: Uint8Array): Promise<{ sha256: string }> {
    return this.serialized(modelName, `the upload of version ${number} of model '${modelName}'`, async () => {
      const directory = await this.repository.scanModel(modelName);
      const known = this.registry.find(modelName);
      const declared = directory ? this.declaredOf(known, directory) : {};
      const unsaved = this.states.stateOf(modelName) === undefined;
      if (unsaved) {
        await this.states.save(known ?? Model.discover(modelName, [])).catch((error: unknown) => {
          throw notMade(`the upload of version ${number} of model '${modelName}'`, error, 'nothing was written');
        });
      }
      const versionId = ModelVersionId.of(modelName, number);
      try {
        await this.repository.addVersion(modelName, number, bytes, async (modelPath) => {
          try {
            await this.loader.check(modelPath, RuntimeKey.uploadCheck(versionId), declared);
          } catch (error) {
            // The staging directory is named as the version it would become; no path of the server.
            const reason = this.repository.withoutPaths((error as Error).message.split(dirname(modelPath)).join(versionId.toString()));
            throw new DomainError('REGISTRY.LOAD_FAILED', `the uploaded model does not load: ${reason}`);
          }
        });
      } catch (error) {
        // A refused upload leaves no saved state behind either (the model's policy still applies at a restart).
        if (unsaved) await this.states.forget(modelName).catch(() => undefined);
        throw error;
      }
      const { model, directory: added } = await this.modelWithDirectory(modelName);
      this.versionIn(model, added, number, { loaded: false });
      // A new revision, so that replicas sharing the store list the new version too. The upload is
      // made whether or not this save succeeds (they list it at the model's next change).
      await this.states.save(model).catch((error: Error) => {
        this.logger.error(`the upload of version ${number} of model '${modelName}' was not saved (replicas list it at the model's next change): ${error.message}`);
        this.states.publish(model);
      });
      return { sha256: createHash('sha256').update(bytes).digest('hex') };
    });
  }

  /**
   * Drains a version (every request it accepted is answered), then releases it. The change is
   * saved first: when the save fails, the version serves on.
   */
  unloadVersion(modelName: string, number: number, force = false): Promise<void> {
    return this.serialized(modelName, `the unload of version ${number} of model '${modelName}'`, async () => {
      const model = this.registry.get(modelName);
      model.requireUnloadable(number, { force });
      const before = model.keepUnloaded(number);
      await this.states
        .save(model, {
          loadedVersions: model.readyVersions.map((v) => v.version).filter((v) => v !== number),
          defaultVersion: model.defaultVersion === number ? undefined : model.defaultVersion,
        })
        .catch((error: unknown) => {
          model.restoreIntents(before);
          throw notMade(`the unload of version ${number} of model '${modelName}'`, error, 'the version serves on');
        });
      await this.unload(model, number, force);
      this.states.publish(model);
    });
  }

  /**
   * The hot swap: loads the version if it is not READY, running its warm-up samples if its
   * configuration has any (on failure the old one keeps serving and the error is returned), saves
   * the swap (with `rollout`, the rollout that promotes it, if any), switches routing to it
   * atomically, then drains and unloads the versions the version policy no longer keeps, except
   * those an operator loaded explicitly. When the save fails, routing does not switch and a
   * version loaded for the swap is unloaded again.
   */
  makeDefault(modelName: string, number: number): Promise<SwapResult> {
    return this.serialized(modelName, `the swap of model '${modelName}' to version ${number}`, async () => {
      const { model, directory } = await this.modelWithDirectory(modelName);
      const declared = this.declaredOf(model, directory);
      const version = this.versionIn(model, directory, number);
      const from = model.servingVersion()?.version;
      const pinned = model.defaultVersion;
      // Pin what serves now, so that the new version, once READY, takes no traffic before the switch.
      if (from !== undefined) model.makeDefault(from, new Date());
      const loadedHere = !version.isReady;
      if (loadedHere) {
        try {
          await this.loader.load(model, number, declared);
        } catch (error) {
          if (pinned === undefined) model.unpinDefault(new Date());
          await this.states.save(model).catch(() => undefined); // the load's error is the one to report
          throw error;
        }
      }
      const explicit = model.intents.explicitVersions;
      const retired = versionsToRetire(declared, model, number).filter((v) => !explicit.includes(v));
      const before = model.changeIntents({ unloadedVersions: model.intents.unloadedVersions.filter((v) => v !== number) });
      try {
        await this.states.save(model, {
          loadedVersions: model.readyVersions.map((v) => v.version).filter((v) => !retired.includes(v)),
          defaultVersion: number,
        });
      } catch (error) {
        model.restoreIntents(before);
        if (loadedHere) await this.unload(model, number, true);
        if (pinned === undefined) model.unpinDefault(new Date());
        this.states.publish(model);
        throw notMade(`the swap of model '${modelName}' to version ${number}`, error, `version ${from ?? 'none'} serves on${loadedHere ? `, and version ${number} was unloaded again` : ''}`);
      }
      model.makeDefault(number, new Date());
      for (const old of retired) await this.unload(model, old, false);
      this.states.publish(model);
      return { from, to: number };
    });
  }

  /**
   * Triton's repository load: the model (re)read from the repository, with an optional
   * configuration override (config.json text), and the versions its policy selects loaded, with
   * those an operator loaded explicitly. Versions already READY with the same configuration stay;
   * with a new one they are reloaded. The others are unloaded. The outcome is saved before any of
   * it takes effect (when the save fails nothing changes); a version that then fails to load is
   * UNAVAILABLE with its reason (and is tried again at the next start), the rest still takes effect.
   */
  loadModel(modelName: string, configOverride?: string): Promise<Model> {
    return this.serialized(modelName, `the load of model '${modelName}'`, async () => {
      if (configOverride !== undefined) this.checkedOverride(modelName, configOverride);
      const { model, directory } = await this.modelWithDirectory(modelName);
      // Without an override, Triton's load goes back to the model's own config file.
      const declared = configOverride !== undefined ? this.checkedOverride(modelName, configOverride) : this.checkedFileConfig(directory);
      const present = directory.versions.map((v) => v.version);
      const selected = selectVersions(declared.versionPolicy ?? DEFAULT_VERSION_POLICY, present);
      if (selected.length === 0) {
        // Triton refuses such a load and keeps serving what it serves.
        throw new DomainError('REGISTRY.LOAD_FAILED', `model '${modelName}': its version policy selects none of the versions in the repository (${present.join(', ') || 'none'})`);
      }
      const explicit = model.intents.explicitVersions.filter((v) => present.includes(v) && !selected.includes(v));
      const wanted = [...selected, ...explicit];
      // A new override, or dropping one, changes the configuration: READY versions reload beside themselves.
      const reloading = configOverride !== undefined || model.configOverride !== undefined;
      const pinned = model.defaultVersion;
      const before = model.changeIntents({ configOverride, unloadedVersions: [] });
      await this.states.save(model, { loadedVersions: wanted, defaultVersion: pinned !== undefined && wanted.includes(pinned) ? pinned : undefined }).catch((error: unknown) => {
        model.restoreIntents(before);
        throw notMade(`the load of model '${modelName}'`, error, 'nothing changed');
      });
      let failure: unknown;
      for (const number of wanted) {
        const version = this.versionIn(model, directory, number);
        try {
          if (version.isReady && reloading) {
            const oldKey = await this.loader.reload(model, number, declared);
            await this.traffic.drain(oldKey);
            await this.loader.release(oldKey);
          } else if (!version.isReady) {
            await this.loader.load(model, number, declared);
          }
        } catch (error) {
          failure ??= error;
        }
      }
      const others = model.versions.filter((v) => (v.isReady || v.hasFailed) && !wanted.includes(v.version));
      for (const version of others) await this.unload(model, version.version, true);
      this.states.publish(model);
      if (failure !== undefined) throw failure;
      return model;
    });
  }

  /**
   * Triton's repository unload: every version of the model, drained then released; the failed
   * ones too. Saved first: when the save fails, the model serves on.
   */
  unloadModel(modelName: string): Promise<void> {
    return this.serialized(modelName, `the unload of model '${modelName}'`, async () => {
      const model = this.registry.get(modelName);
      const versions = model.versions.filter((v) => v.isReady || v.hasFailed).map((v) => v.version);
      const before = model.changeIntents({ unloadedVersions: versions, explicitVersions: [] });
      await this.states.save(model, { loadedVersions: [], defaultVersion: undefined }).catch((error: unknown) => {
        model.restoreIntents(before);
        throw notMade(`the unload of model '${modelName}'`, error, 'the model serves on');
      });
      for (const number of versions) await this.unload(model, number, true);
      this.states.publish(model);
    });
  }

  /** Drains and releases a READY version; a version whose load failed only stops counting as a failure. */
  private async unload(model: Model, number: number, force: boolean): Promise<void> {
    if (model.version(number).hasFailed) {
      model.unloadFailed(number, new Date());
      return;
    }
    const version = model.startUnloading(number, new Date(), { force });
    try {
      await this.traffic.drain(version.key);
      await this.loader.release(version.key);
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
    if (!directory) {
      // It left the repository: its saved state goes too (it would name versions no longer there).
      await this.states.forget(modelName).catch(() => undefined);
      throw new DomainError('REGISTRY.MODEL_NOT_FOUND', `the model repository has no model '${modelName}'`);
    }
    let model = this.registry.find(modelName);
    if (!model) {
      model = Model.discover(modelName, []);
      this.registry.add(model);
    }
    return { model, directory };
  }

  /**
   * The model's version `number`, registered from the repository if the model did not have it yet
   * (to be loaded now, or, with `loaded: false`, as a version not loaded).
   */
  private versionIn(model: Model, directory: ModelDirectory, number: number, { loaded = true } = {}): ModelVersion {
    const inModel = model.versions.find((v) => v.version === number);
    if (inModel) return inModel;
    const onDisk = directory.versions.find((v) => v.version === number);
    if (!onDisk) {
      const present = directory.versions.map((v) => v.version).join(', ') || 'none';
      throw new DomainError('REGISTRY.VERSION_NOT_FOUND', `model '${model.name}' has no version ${number} in the repository (versions: ${present})`);
    }
    const version = loaded ? ModelVersion.register(model.name, number, onDisk.modelPath) : ModelVersion.notLoaded(model.name, number, onDisk.modelPath);
    model.addVersion(version);
    return version;
  }

  /** The configuration the model serves with: its override, else its config file. */
  private declaredOf(model: Model | undefined, directory: ModelDirectory): DeclaredModelConfig {
    const override = model?.configOverride;
    return override !== undefined ? this.checkedOverride(directory.name, override) : this.checkedFileConfig(directory);
  }

  /** The model's config file, within the host's limits. */
  private checkedFileConfig(directory: ModelDirectory): DeclaredModelConfig {
    const declared = fileConfigOf(directory);
    try {
      this.limits.check(declared);
    } catch (error) {
      throw new DomainError('REGISTRY.INVALID_CONFIG', `model '${directory.name}': config.json: ${(error as Error).message}`);
    }
    return declared;
  }

  /** A configuration override (config.json text), within the host's limits. */
  private checkedOverride(modelName: string, text: string): DeclaredModelConfig {
    const declared = parseOverrideWith((config) => this.repository.parseConfig(config), modelName, text);
    try {
      this.limits.check(declared);
    } catch (error) {
      throw new DomainError('REGISTRY.INVALID_CONFIG', `model '${modelName}': the configuration override is invalid: ${(error as Error).message}`);
    }
    return declared;
  }

  /**
   * Applies a state that another server sharing the store saved (`stored` undefined: removed):
   * the model as that state says, saving nothing. Versions to load load first, the default version
   * switches next, and only then do the versions no longer wanted drain and unload, so that no
   * request fails meanwhile. A revision this server has already applied (its own save) is skipped.
   */
  follow(modelName: string, stored: StoredModelState | undefined): Promise<void> {
    return this.queues.run(modelName, async () => {
      if (!stored) {
        this.states.applied(modelName, undefined);
        return;
      }
      if (stored.revision <= this.states.revisionOf(modelName)) return;
      await this.converge(modelName, stored);
    });
  }

  /** Catches up with the stored state of the model, when another server saved a newer one. */
  private async catchUp(modelName: string): Promise<void> {
    const stored = await this.states.read(modelName);
    if (stored && stored.revision > this.states.revisionOf(modelName)) await this.converge(modelName, stored);
  }

  private async converge(modelName: string, stored: StoredModelState): Promise<void> {
    const { state } = stored;
    const directory = await this.repository.scanModel(modelName);
    if (!directory) {
      this.states.applied(modelName, stored); // not (yet) in this server's repository
      return;
    }
    let model = this.registry.find(modelName);
    if (!model) {
      model = Model.discover(modelName, []);
      this.registry.add(model);
    }
    // Versions new to the repository (an upload) are listed, not loaded.
    for (const onDisk of directory.versions) this.versionIn(model, directory, onDisk.version, { loaded: false });
    const reloading = state.configOverride !== model.configOverride;
    model.changeIntents({ configOverride: state.configOverride, unloadedVersions: state.unloadedVersions, explicitVersions: state.explicitVersions ?? [] });
    this.states.applied(modelName, stored);
    const present = directory.versions.map((v) => v.version);
    const wanted = state.loadedVersions.filter((v) => present.includes(v));
    // Pin what serves now, so that a version loaded for a swap takes no traffic before the switch.
    const serving = model.servingVersion()?.version;
    if (state.defaultVersion !== undefined && serving !== undefined && state.defaultVersion !== serving) model.makeDefault(serving, new Date());
    let failure: unknown;
    let declared: DeclaredModelConfig | undefined;
    try {
      declared = this.declaredOf(model, directory);
    } catch (error) {
      failure = error;
    }
    for (const number of declared ? wanted : []) {
      const version = model.version(number);
      try {
        if (version.isReady && reloading) {
          const oldKey = await this.loader.reload(model, number, declared!);
          await this.traffic.drain(oldKey);
          await this.loader.release(oldKey);
        } else if (!version.isReady) {
          await this.loader.load(model, number, declared!);
        }
      } catch (error) {
        failure ??= error;
      }
    }
    const pin = state.defaultVersion;
    if (pin !== undefined && model.version(pin).isReady) model.makeDefault(pin, new Date());
    else if (pin === undefined && model.defaultVersion !== undefined) model.unpinDefault(new Date());
    const others = model.versions.filter((v) => (v.isReady || v.hasFailed) && !wanted.includes(v.version));
    for (const version of others) await this.unload(model, version.version, true);
    this.states.publish(model);
    const outcome = `model '${modelName}' follows revision ${stored.revision} of its stored state`;
    if (failure !== undefined) this.logger.error(`${outcome}, in part: ${(failure as Error).message}`);
    else this.logger.log(outcome);
  }

  /** Runs `operation` (the `change` named in errors) alone for the model, here and across the servers sharing the store. */
  private serialized<T>(modelName: string, change: string, operation: () => Promise<T>): Promise<T> {
    if (this.registry.isLoading) {
      // Start-up loads models outside this queue; an admin change now could race with it.
      return Promise.reject(new DomainError('SERVER.NOT_READY', 'the model repository is still loading: admin changes are accepted once it has loaded (GET /health says so); retry in a moment'));
    }
    // One at a time here (the queue), and across the servers sharing the store (the lock), each
    // first catching up with what another server saved.
    return this.queues.run(modelName, () =>
      this.locks.run(`model/${modelName}`, async () => {
        await this.catchUp(modelName).catch((error: unknown) => {
          // The stored state cannot be read (changed from outside, or the store fails): nothing is changed.
          const unread = error instanceof DomainError ? error : new DomainError('REGISTRY.STATE_NOT_SAVED', (error as Error).message);
          throw notMade(change, unread, 'nothing changed');
        });
        return operation();
      }),
    );
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

function parseOverrideWith(parseConfig: (text: string) => DeclaredModelConfig, modelName: string, text: string): DeclaredModelConfig {
  try {
    return parseConfig(text);
  } catch (error) {
    throw new DomainError('REGISTRY.INVALID_CONFIG', `model '${modelName}': the configuration override is invalid: ${(error as Error).message}`);
  }
}
