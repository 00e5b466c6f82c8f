/**
 * What the registry keeps of one model across restarts: enough to bring the server back to the
 * same serving state. The model files themselves stay in the model repository.
 */
export interface ModelState {
  readonly name: string;
  /** Versions an operator asked to be loaded, beyond or instead of what the version policy picks. */
  readonly loadedVersions: readonly number[];
  /** Versions an operator unloaded, which the version policy must not bring back at restart. */
  readonly unloadedVersions: readonly number[];
  /**
   * Versions an operator loaded one by one (the admin version load): they stay loaded until an
   * operator unloads them, whatever the version policy would choose (a swap does not retire them).
   * Absent: none.
   */
  readonly explicitVersions?: readonly number[];
  /** The version that serves requests naming none; absent: the highest READY one (Triton's rule). */
  readonly defaultVersion?: number;
  /** A configuration given with a load (Triton's `config` override), as config.json text. */
  readonly configOverride?: string;
}

/** A model's stored state changed (by this process or another sharing the store); `stored` undefined: removed. */
export interface ModelStateChange {
  readonly name: string;
  readonly stored?: StoredModelState;
}

/** A model's state as stored, with the revision that compare-and-set writes are checked against. */
export interface StoredModelState {
  readonly state: ModelState;
  /** 1 for the first write, +1 for each write after. */
  readonly revision: number;
}

/**
 * A stored state that cannot be read back (changed from outside: not what the store writes, or
 * another model's). The store sets it aside, so that its model starts as if it had none, and says
 * where it is kept now, for an operator to look at.
 */
export interface UnreadableModelState {
  /** The model whose state it is, when it is one of the names the caller knows; else undefined. */
  readonly name: string | undefined;
  /** Where the store keeps it now, in the store's own terms (never a path of the server). */
  readonly keptAs: string;
  readonly reason: string;
}

/** What the store holds: every state it could read back, and those it could not (set aside). */
export interface StoredModelStates {
  readonly states: readonly StoredModelState[];
  readonly unreadable: readonly UnreadableModelState[];
}

/**
 * Port to where model states are kept. Writes are per model and compare-and-set, so that several
 * replicas sharing one store (a distributed adapter) cannot overwrite each other's changes
 * unknowingly: `save` succeeds only if the stored revision is still the one the writer read.
 */
export abstract class ModelStateStore {
  /**
   * Every stored model state. A state that cannot be read back is set aside and reported, never
   * thrown: one bad state must not keep the other models from their own. `knownNames` (the models
   * the caller has) lets the store tell whose state an unreadable one is.
   */
  abstract loadAll(knownNames?: readonly string[]): Promise<StoredModelStates>;
  /** The stored state of one model, undefined when it has none (or one that cannot be read back). */
  abstract load(name: string): Promise<StoredModelState | undefined>;
  /**
   * Stores `state` as revision `expectedRevision + 1` (`expectedRevision` 0: the model has no
   * stored state yet). Throws REGISTRY.STATE_CONFLICT when the stored revision is another one.
   * Once it resolves, the state survives a crash of the process; when it rejects, the stored state
   * is the one before. Its errors never name a path of the server.
   */
  abstract save(state: ModelState, expectedRevision: number): Promise<StoredModelState>;
  /** Forgets a model (it left the repository). Same compare-and-set rule as `save`. */
  abstract remove(name: string, expectedRevision: number): Promise<void>;
  /**
   * Calls `listener` with the changes of stored states from now on, the writer's own included (a
   * listener tells them by their revision), until the returned function is called. A store shared
   * by several servers also calls it with every stored state when it reconnects after an outage,
   * so that a listener catches up with what it missed. Each state is given with its revision.
   */
  abstract watch(listener: (change: ModelStateChange) => void): () => void;
}
