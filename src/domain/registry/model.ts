import { AggregateRoot } from '../shared/aggregate-root.js';
import { DomainError } from '../shared/domain-error.js';
import type { ModelEvent } from './model-events.js';
import type { LoadedVersion, ModelVersion } from './model-version.js';
import type { RuntimeKey } from '../shared/model-version-id.js';

/**
 * A model of the repository and its versions. Version transitions go through the model, which
 * checks the invariants that involve more than one version (which one serves) and records the
 * events other contexts react to.
 */
/**
 * What operators asked of a model beyond what its version policy picks, kept with it across
 * restarts (and shared by replicas): the configuration override, the versions unloaded on purpose
 * and those loaded one by one.
 */
export interface OperatorIntents {
  /** A configuration given with a load (Triton's `config` override), as config.json text. */
  readonly configOverride?: string;
  /** Versions an operator unloaded, which the version policy must not bring back at restart. */
  readonly unloadedVersions: readonly number[];
  /** Versions an operator loaded one by one: they stay loaded whatever the policy picks, until unloaded. */
  readonly explicitVersions: readonly number[];
}

const NO_INTENTS: OperatorIntents = { unloadedVersions: [], explicitVersions: [] };

export class Model extends AggregateRoot<ModelEvent> {
  private readonly versionsByNumber = new Map<number, ModelVersion>();
  /** The version an operator made the default (hot swap); absent: the highest READY one serves. */
  private pinnedDefault?: number;
  private intentsValue: OperatorIntents = NO_INTENTS;

  private constructor(
    readonly name: string,
    /** Why the model as a whole cannot serve (e.g. no version directory), empty when it can. */
    readonly problem: string,
  ) {
    super();
  }

  static discover(name: string, versions: readonly ModelVersion[], problem = '', intents: OperatorIntents = NO_INTENTS): Model {
    const model = new Model(name, problem);
    for (const version of versions) model.addVersion(version);
    model.intentsValue = sortedIntents(intents);
    return model;
  }

  /** What operators asked of this model (see OperatorIntents). */
  get intents(): OperatorIntents {
    return this.intentsValue;
  }

  get configOverride(): string | undefined {
    return this.intentsValue.configOverride;
  }

  /**
   * Records what an operator asked (a change about to be saved); returns the intents before, for
   * `restoreIntents` when the change is not made after all.
   */
  changeIntents(change: Partial<OperatorIntents>): OperatorIntents {
    const before = this.intentsValue;
    const configOverride = 'configOverride' in change ? change.configOverride : before.configOverride;
    this.intentsValue = sortedIntents({
      unloadedVersions: change.unloadedVersions ?? before.unloadedVersions,
      explicitVersions: change.explicitVersions ?? before.explicitVersions,
      ...(configOverride !== undefined && { configOverride }),
    });
    return before;
  }

  /** Back to intents returned by `changeIntents` (the change was not saved). */
  restoreIntents(intents: OperatorIntents): void {
    this.intentsValue = intents;
  }

  /** An operator loads version `number` by itself: it is explicitly loaded, no longer unloaded on purpose. */
  keepLoaded(number: number): OperatorIntents {
    const { unloadedVersions, explicitVersions } = this.intentsValue;
    return this.changeIntents({ unloadedVersions: unloadedVersions.filter((v) => v !== number), explicitVersions: [...explicitVersions.filter((v) => v !== number), number] });
  }

  /** An operator unloads version `number`: the policy must not bring it back, and it is no longer explicitly loaded. */
  keepUnloaded(number: number): OperatorIntents {
    const { unloadedVersions, explicitVersions } = this.intentsValue;
    return this.changeIntents({ unloadedVersions: [...unloadedVersions.filter((v) => v !== number), number], explicitVersions: explicitVersions.filter((v) => v !== number) });
  }

  /** A version directory that appeared (an upload, a new load): UNKNOWN until it loads. */
  addVersion(version: ModelVersion): void {
    if (version.modelName !== this.name) {
      throw new DomainError('REGISTRY.INVALID_TRANSITION', `version ${version.version} belongs to '${version.modelName}', not '${this.name}'`);
    }
    if (this.versionsByNumber.has(version.version)) {
      throw new DomainError('REGISTRY.INVALID_TRANSITION', `model '${this.name}' already has version ${version.version}`);
    }
    this.versionsByNumber.set(version.version, version);
  }

  /** Versions, highest first. */
  get versions(): ModelVersion[] {
    return [...this.versionsByNumber.values()].sort((a, b) => b.version - a.version);
  }

  get readyVersions(): ModelVersion[] {
    return this.versions.filter((version) => version.isReady);
  }

  get isReady(): boolean {
    return this.readyVersions.length > 0;
  }

  /** The version an operator pinned as the default, if any. */
  get defaultVersion(): number | undefined {
    return this.pinnedDefault;
  }

  /** A version this model serves or tried to; throws VERSION_NOT_FOUND for any other. */
  version(number: number): ModelVersion {
    const version = this.versionsByNumber.get(number);
    if (!version) {
      const served = this.versions.map((v) => v.version).join(', ') || 'none';
      throw new DomainError('REGISTRY.VERSION_NOT_FOUND', `model '${this.name}' has no version ${number} (versions: ${served})`);
    }
    return version;
  }

  /**
   * The version that serves a request: the one named, else the pinned default, else the highest
   * READY one (Triton's rule). Throws VERSION_NOT_FOUND for a version that is not served (never
   * loaded included) and VERSION_NOT_READY when it is not READY.
   */
  versionToServe(requested?: number): ModelVersion {
    if (requested !== undefined) {
      const version = this.version(requested);
      if (version.neverLoaded) {
        throw new DomainError('REGISTRY.VERSION_NOT_FOUND', `model '${this.name}' does not serve version ${requested}: it is in the repository and not loaded`);
      }
      if (!version.isReady) {
        throw new DomainError('REGISTRY.VERSION_NOT_READY', `version ${requested} of model '${this.name}' is ${version.state}${version.reason ? `: ${version.reason}` : ''}`);
      }
      return version;
    }
    const serving = this.servingVersion();
    if (!serving) {
      const why = this.problem || (this.versions.length === 0 ? 'it has no versions' : '') || this.versions.map((v) => `version ${v.version} is ${v.state}${v.reason ? ` (${v.reason})` : ''}`).join('; ');
      throw new DomainError('REGISTRY.VERSION_NOT_READY', `model '${this.name}' has no READY version: ${why}`);
    }
    return serving;
  }

  /** The version that serves requests naming none, if one can. */
  servingVersion(): ModelVersion | undefined {
    const pinned = this.pinnedDefault === undefined ? undefined : this.versionsByNumber.get(this.pinnedDefault);
    return pinned?.isReady ? pinned : this.readyVersions[0];
  }

  startLoading(number: number): ModelVersion {
    const version = this.version(number);
    version.markLoading();
    return version;
  }

  finishLoading(number: number, loaded: LoadedVersion): void {
    const before = this.servingVersion()?.version;
    const version = this.version(number);
    version.markReady(loaded);
    this.record({ type: 'ModelVersionLoaded', occurredAt: loaded.loadedAt, modelName: this.name, version: number, fileSha256: loaded.fileSha256 });
    this.recordServingChange(before, loaded.loadedAt);
  }

  /** A READY version switched to a reloaded instance (new configuration): it never stopped serving. */
  finishReloading(number: number, loaded: LoadedVersion, key: RuntimeKey): void {
    this.version(number).markReloaded(loaded, key);
    this.record({ type: 'ModelVersionLoaded', occurredAt: loaded.loadedAt, modelName: this.name, version: number, fileSha256: loaded.fileSha256 });
  }

  failLoading(number: number, reason: string, at: Date): void {
    this.version(number).markFailed(reason);
    this.record({ type: 'ModelVersionFailed', occurredAt: at, modelName: this.name, version: number, reason });
  }

  /**
   * Makes a READY version the one that serves requests naming none: the hot swap's switch. Only a
   * READY version can; the switch is atomic (the next request is routed to it).
   */
  makeDefault(number: number, at: Date): void {
    const version = this.version(number);
    if (!version.isReady) {
      throw new DomainError('REGISTRY.INVALID_TRANSITION', `version ${number} of '${this.name}' is ${version.state}: only a READY version can become the default`);
    }
    const before = this.servingVersion()?.version;
    this.pinnedDefault = number;
    this.recordServingChange(before, at);
  }

  /** Back to Triton's rule: the highest READY version serves requests naming none. */
  unpinDefault(at: Date): void {
    const before = this.servingVersion()?.version;
    this.pinnedDefault = undefined;
    this.recordServingChange(before, at);
  }

  /**
   * Takes a READY version out of service. The version that serves requests naming none may go
   * only when another READY version takes over, unless forced: a pinned default must first be
   * replaced by another (makeDefault), so a swap never leaves the model without a version.
   */
  startUnloading(number: number, at: Date, { force = false } = {}): ModelVersion {
    const version = this.version(number);
    const serving = this.servingVersion();
    this.requireUnloadable(number, { force });
    version.beginUnload();
    if (this.pinnedDefault === number) this.pinnedDefault = undefined;
    this.recordServingChange(serving?.version, at);
    return version;
  }

  /**
   * Throws, as the unload itself would, when version `number` cannot be unloaded now (see
   * startUnloading; a version whose load failed always can): so that the change can be saved first.
   */
  requireUnloadable(number: number, { force = false } = {}): void {
    const version = this.version(number);
    if (version.hasFailed) return;
    if (!version.isReady) {
      throw new DomainError('REGISTRY.INVALID_TRANSITION', `version ${number} of '${this.name}' cannot unload while ${version.state}${version.isUnloaded ? ' (unloaded already)' : ''}`);
    }
    const serving = this.servingVersion();
    if (!force && serving?.version === number) {
      const successor = this.readyVersions.find((v) => v.version !== number);
      if (this.pinnedDefault === number || !successor) {
        throw new DomainError(
          'REGISTRY.INVALID_TRANSITION',
          successor
            ? `version ${number} of '${this.name}' is the default version: make another READY version the default first, or force the unload`
            : `version ${number} of '${this.name}' is its only READY version: load another first, or force the unload`,
        );
      }
    }
  }

  finishUnloading(number: number, at: Date): void {
    this.version(number).markUnloaded();
    this.record({ type: 'ModelVersionUnloaded', occurredAt: at, modelName: this.name, version: number });
  }

  /** An operator unloads a version whose load failed: it no longer counts as a failure (nothing of it was loaded). */
  unloadFailed(number: number, at: Date): void {
    this.version(number).markFailureUnloaded();
    this.record({ type: 'ModelVersionUnloaded', occurredAt: at, modelName: this.name, version: number });
  }

  private recordServingChange(before: number | undefined, at: Date): void {
    const after = this.servingVersion()?.version;
    if (after !== before) this.record({ type: 'DefaultVersionChanged', occurredAt: at, modelName: this.name, from: before, to: after });
  }
}

function sortedIntents(intents: OperatorIntents): OperatorIntents {
  const sorted = (versions: readonly number[]) => [...new Set(versions)].sort((a, b) => a - b);
  return {
    unloadedVersions: sorted(intents.unloadedVersions),
    explicitVersions: sorted(intents.explicitVersions),
    ...(intents.configOverride !== undefined && { configOverride: intents.configOverride }),
  };
}
