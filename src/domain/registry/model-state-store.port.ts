import type { RolloutSnapshot } from '../rollout/rollout.js';

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
  /** The model's rollout, if one was set, so that a restart resumes it at the same step. */
  readonly rollout?: RolloutSnapshot;
}

/** A model's state as stored, with the revision that compare-and-set writes are checked against. */
export interface StoredModelState {
  readonly state: ModelState;
  /** 1 for the first write, +1 for each write after. */
  readonly revision: number;
}

/**
 * Port to where model states are kept. Writes are per model and compare-and-set, so that several
 * replicas sharing one store (a distributed adapter) cannot overwrite each other's changes
 * unknowingly: `save` succeeds only if the stored revision is still the one the writer read.
 */
export abstract class ModelStateStore {
  /** Every stored model state. */
  abstract loadAll(): Promise<StoredModelState[]>;
  /**
   * Stores `state` as revision `expectedRevision + 1` (`expectedRevision` 0: the model has no
   * stored state yet). Throws REGISTRY.STATE_CONFLICT when the stored revision is another one.
   * Once it resolves, the state survives a crash of the process.
   */
  abstract save(state: ModelState, expectedRevision: number): Promise<StoredModelState>;
  /** Forgets a model (it left the repository). Same compare-and-set rule as `save`. */
  abstract remove(name: string, expectedRevision: number): Promise<void>;
}
