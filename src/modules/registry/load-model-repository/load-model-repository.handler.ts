import { Injectable, Logger } from '@nestjs/common';
import type { DeclaredModelConfig } from '../../../domain/registry/model-config.js';
import { ModelConfigLimits } from '../../../domain/registry/model-config-limits.js';
import { ModelRepository, type ModelDirectory } from '../../../domain/registry/model-repository.port.js';
import type { ModelState, UnreadableModelState } from '../../../domain/registry/model-state-store.port.js';
import { ModelVersion } from '../../../domain/registry/model-version.js';
import { Model } from '../../../domain/registry/model.js';
import { DEFAULT_VERSION_POLICY, selectVersions, type VersionPolicy } from '../../../domain/registry/version-policy.js';
import { ModelRegistry } from '../model-registry.js';
import { ModelStates } from '../model-states.js';
import { VersionLoader } from '../version-loader.js';

/**
 * Loads every model of the repository at start. A model with a saved state comes back as it was
 * left: the versions that were loaded, its default version, its configuration override. Any other
 * model loads the versions its policy selects. A saved state the server cannot apply (unreadable,
 * naming a version no longer in the repository, an override that no longer parses) is logged at
 * error level, naming the model, the state and why, and the model loads as its policy selects.
 * Every version directory is listed: those not loaded are UNAVAILABLE, "unloaded". A model that
 * fails is UNAVAILABLE with its reason; the others load regardless.
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
      for (const path of await this.repository.removeAbandonedUploads()) this.logger.warn(`removed what an interrupted upload left: ${path}`);
      const directories = await this.repository.scan();
      const names = directories.map((directory) => directory.name);
      const saved = await this.restoreStates(names);
      await this.forgetModelsThatLeft(names);
      await Promise.all(directories.map((directory) => this.loadModel(directory, saved.get(directory.name))));
    } finally {
      this.registry.finishLoading();
    }
  }

  /** The saved states; those that cannot be read are reported (their models load as their policy says). */
  private async restoreStates(names: readonly string[]): Promise<ReadonlyMap<string, ModelState>> {
    try {
      const { states, unreadable } = await this.states.restore(names);
      for (const entry of unreadable) this.reportUnreadable(entry);
      return states;
    } catch (error) {
      this.logger.error({ msg: `the saved model states cannot be read (${(error as Error).message}): every model loads as its version policy says`, reason: (error as Error).message });
      return new Map();
    }
  }

  /** The saved states of models no longer in the repository are removed, so that they do not stay forever. */
  private async forgetModelsThatLeft(names: readonly string[]): Promise<void> {
    for (const name of this.states.names.filter((stored) => !names.includes(stored))) {
      await this.states.forget(name).then(
        () => this.logger.log(`model '${name}' left the repository: its saved state is removed`),
        (error: Error) => this.logger.warn(`model '${name}' left the repository, and its saved state could not be removed: ${error.message}`),
      );
    }
  }

  private reportUnreadable({ name, keptAs, reason }: UnreadableModelState): void {
    const where = `state file ${keptAs} in STATE_DIR`;
    const kept = keptAs.includes('.unreadable-') ? `it was set aside as ${where}` : `it stays as ${where}, and the model's changes cannot be saved until it is repaired or removed`;
    const msg = name
      ? `model '${name}': its saved state cannot be applied: ${reason}; ${kept}; the model loads as its version policy says`
      : `a saved model state of no model in the repository cannot be read: ${reason}; ${kept}`;
    this.logger.error({ msg, model: name, state: keptAs, reason });
  }

  private async loadModel(directory: ModelDirectory, restored: ModelState | undefined): Promise<void> {
    let saved = restored;
    const whyNot = saved && whyNotApplicable(directory, saved, (text) => this.repository.parseConfig(text));
    if (saved && whyNot) {
      const msg = `model '${directory.name}': its saved state (${describeState(saved)}) cannot be applied: ${whyNot}; the model loads as its version policy says`;
      this.logger.error({ msg, model: directory.name, state: saved, reason: whyNot });
      this.states.discard(directory.name);
      saved = undefined;
    }
    const config = withinLimits(configOf(directory, saved, (text) => this.repository.parseConfig(text)), this.limits);
    const declared: DeclaredModelConfig = config.ok ? config.declared : {};
    const policy = declared.versionPolicy ?? DEFAULT_VERSION_POLICY;
    const available = directory.versions.map((v) => v.version);
    const chosen = new Set(saved ? saved.loadedVersions : selectVersions(policy, available));
    const versions = directory.versions.map((v) =>
      chosen.has(v.version) ? ModelVersion.register(directory.name, v.version, v.modelPath) : ModelVersion.notLoaded(directory.name, v.version, v.modelPath),
    );
    const problem =
      directory.versions.length === 0
        ? config.ok
          ? 'no version directory (a positive integer such as 1/) holds a model'
          : config.reason
        : chosen.size === 0 && !saved
          ? `its version policy (${describePolicy(policy)}) selects none of the versions in the repository (${available.join(', ')})`
          : '';
    const intents = saved && { configOverride: saved.configOverride, unloadedVersions: saved.unloadedVersions, explicitVersions: saved.explicitVersions ?? [] };
    const model = Model.discover(directory.name, versions, problem, intents);
    this.registry.add(model);
    if (problem) this.logger.error(`model '${directory.name}' is UNAVAILABLE: ${problem}`);
    await Promise.all(
      model.versions
        .filter((version) => chosen.has(version.version))
        .map(async (version) => {
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

/** Reads a configuration in the repository's format (ModelRepository.parseConfig). */
type ConfigParser = (text: string) => DeclaredModelConfig;

/** Why a saved state cannot be applied to the model as the repository holds it now; undefined when it can. */
function whyNotApplicable(directory: ModelDirectory, saved: ModelState, parseConfig: ConfigParser): string | undefined {
  const available = new Set(directory.versions.map((v) => v.version));
  const named = [...saved.loadedVersions, ...(saved.explicitVersions ?? []), ...(saved.defaultVersion !== undefined ? [saved.defaultVersion] : [])];
  const missing = [...new Set(named)].filter((v) => !available.has(v)).sort((a, b) => a - b);
  if (missing.length > 0) {
    const present = [...available].sort((a, b) => a - b).join(', ') || 'none';
    return `version${missing.length > 1 ? 's' : ''} ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} no longer in the repository (versions: ${present})`;
  }
  if (saved.configOverride !== undefined) {
    try {
      parseConfig(saved.configOverride);
    } catch (error) {
      return `its configuration override is invalid: ${(error as Error).message}`;
    }
  }
  return undefined;
}

function describeState(state: ModelState): string {
  const parts = [`loaded versions [${state.loadedVersions.join(', ')}]`];
  if (state.defaultVersion !== undefined) parts.push(`default version ${state.defaultVersion}`);
  if (state.explicitVersions?.length) parts.push(`explicitly loaded [${state.explicitVersions.join(', ')}]`);
  if (state.configOverride !== undefined) parts.push('a configuration override');
  return parts.join(', ');
}

function describePolicy(policy: VersionPolicy): string {
  return policy.kind === 'latest' ? `latest ${policy.numVersions}` : policy.kind === 'all' ? 'all' : `specific ${policy.versions.join(', ')}`;
}

/** The model's configuration: the override saved with it, else its config file. */
function configOf(directory: ModelDirectory, saved: ModelState | undefined, parseConfig: ConfigParser): ModelDirectory['config'] {
  if (saved?.configOverride === undefined) return directory.config;
  return { ok: true, declared: parseConfig(saved.configOverride) }; // checked by whyNotApplicable
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
