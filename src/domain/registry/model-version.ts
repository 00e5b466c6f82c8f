import { DomainError } from '../shared/domain-error.js';
import { ModelVersionId, RuntimeKey } from '../shared/model-version-id.js';
import type { ModelConfig } from './model-config.js';

/** What a version is once loaded: the configuration it serves with and the facts of its load. */
export interface LoadedVersion {
  readonly config: ModelConfig;
  readonly executionProvider: string;
  /** sha256 of the model file, hex. */
  readonly fileSha256: string;
  readonly loadedAt: Date;
}

const UNLOADED = 'unloaded';

/** Triton's model-version states. */
export type ModelVersionState = 'UNKNOWN' | 'LOADING' | 'READY' | 'UNLOADING' | 'UNAVAILABLE';

/** One version directory of a model and its life: UNKNOWN -> LOADING -> READY | UNAVAILABLE -> UNLOADING -> UNAVAILABLE. */
export class ModelVersion {
  private constructor(
    readonly modelName: string,
    readonly version: number,
    readonly path: string,
    private _state: ModelVersionState,
    private _reason: string,
    private _config?: ModelConfig,
    private _executionProvider?: string,
    private _loadedAt?: Date,
    private _fileSha256?: string,
    private _key?: RuntimeKey,
    private _reloads = 0,
    private _neverLoaded = false,
  ) {}

  static register(modelName: string, version: number, path: string): ModelVersion {
    if (!Number.isSafeInteger(version) || version < 1) {
      throw new DomainError('REGISTRY.INVALID_TRANSITION', `version ${version} of '${modelName}' is not a positive integer`);
    }
    return new ModelVersion(modelName, version, path, 'UNKNOWN', '');
  }

  /**
   * A version directory the server does not serve (uploaded and not loaded yet, or not chosen at
   * start): UNAVAILABLE, "unloaded", as Triton shows a version it does not serve. It can be loaded.
   */
  static notLoaded(modelName: string, version: number, path: string): ModelVersion {
    const registered = ModelVersion.register(modelName, version, path);
    registered._state = 'UNAVAILABLE';
    registered._reason = UNLOADED;
    registered._neverLoaded = true;
    return registered;
  }

  get state(): ModelVersionState {
    return this._state;
  }
  get reason(): string {
    return this._reason;
  }
  get config(): ModelConfig | undefined {
    return this._config;
  }
  get executionProvider(): string | undefined {
    return this._executionProvider;
  }
  get loadedAt(): Date | undefined {
    return this._loadedAt;
  }
  /** sha256 of the model file it was last loaded from. */
  get fileSha256(): string | undefined {
    return this._fileSha256;
  }
  get isReady(): boolean {
    return this._state === 'READY';
  }
  /** UNAVAILABLE because it was unloaded on purpose, not because it failed. */
  get isUnloaded(): boolean {
    return this._state === 'UNAVAILABLE' && this._reason === UNLOADED;
  }
  /** UNAVAILABLE because its load failed (the reason says why), and not unloaded since. */
  get hasFailed(): boolean {
    return this._state === 'UNAVAILABLE' && this._reason !== UNLOADED;
  }
  /**
   * Listed as not loaded (notLoaded) and not asked to load since: to inference it is a version the
   * server does not have (Triton's NOT_FOUND), where one unloaded is one it has, UNAVAILABLE.
   */
  get neverLoaded(): boolean {
    return this._neverLoaded;
  }
  get id(): ModelVersionId {
    return (this._id ??= ModelVersionId.of(this.modelName, this.version));
  }
  private _id?: ModelVersionId;

  /** The runtime's name for this version's loaded instances. */
  get key(): RuntimeKey {
    return this._key ?? RuntimeKey.of(this.id);
  }

  /** The runtime key a reload of this READY version loads under, beside the one serving. */
  get nextKey(): RuntimeKey {
    return RuntimeKey.reload(this.id, this._reloads + 2);
  }

  markLoading(): void {
    this.requireState('start loading', 'UNKNOWN', 'UNAVAILABLE');
    this._state = 'LOADING';
    this._neverLoaded = false;
    this._reason = '';
  }

  markReady(loaded: LoadedVersion): void {
    this.requireState('become ready', 'LOADING');
    this._state = 'READY';
    this._reason = '';
    this._config = loaded.config;
    this._executionProvider = loaded.executionProvider;
    this._loadedAt = loaded.loadedAt;
    this._fileSha256 = loaded.fileSha256;
  }

  markFailed(reason: string): void {
    this.requireState('fail', 'UNKNOWN', 'LOADING');
    this._state = 'UNAVAILABLE';
    this._reason = reason;
  }

  beginUnload(): void {
    this.requireState('unload', 'READY');
    this._state = 'UNLOADING';
  }

  /**
   * A READY version now served by another runtime instance (`key`), loaded with a new
   * configuration beside the old one: it stays READY throughout, so no request finds it missing.
   */
  markReloaded(loaded: LoadedVersion, key: RuntimeKey): void {
    this.requireState('be reloaded', 'READY');
    this._config = loaded.config;
    this._executionProvider = loaded.executionProvider;
    this._loadedAt = loaded.loadedAt;
    this._fileSha256 = loaded.fileSha256;
    this._key = key;
    this._reloads++;
  }

  markUnloaded(): void {
    this.requireState('finish unloading', 'UNLOADING');
    this._state = 'UNAVAILABLE';
    this._reason = UNLOADED;
    this._config = undefined;
    this._executionProvider = undefined;
    this._key = undefined;
  }

  /**
   * An operator unloads a version whose load failed: nothing of it is loaded, and from now on it is
   * unloaded rather than failed (Triton's index then shows it UNAVAILABLE, "unloaded").
   */
  markFailureUnloaded(): void {
    if (!this.hasFailed) {
      throw new DomainError('REGISTRY.INVALID_TRANSITION', `version ${this.version} of '${this.modelName}' cannot be unloaded while ${this._state}${this.isUnloaded ? ' (unloaded already)' : ''}`);
    }
    this._reason = UNLOADED;
  }

  private requireState(action: string, ...allowed: ModelVersionState[]): void {
    if (!allowed.includes(this._state)) {
      throw new DomainError(
        'REGISTRY.INVALID_TRANSITION',
        `version ${this.version} of '${this.modelName}' cannot ${action} while ${this._state}`,
      );
    }
  }
}
