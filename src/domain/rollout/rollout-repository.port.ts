import type { RolloutSnapshot } from './rollout.js';

/** A model's rollout as stored, with the revision that compare-and-set writes are checked against. */
export interface StoredRollout {
  readonly snapshot: RolloutSnapshot;
  /** 1 for the first write, +1 for each write after. */
  readonly revision: number;
}

/** A model's stored rollout changed (by this process or another sharing the store); `stored` undefined: removed. */
export interface RolloutChange {
  readonly modelName: string;
  readonly stored?: StoredRollout;
}

/**
 * Port to where rollouts are kept (one per model), so that a restart resumes each at the same step
 * and replicas sharing the store follow the same plan. Writes are compare-and-set per model, as
 * the model states' are.
 */
export abstract class RolloutRepository {
  /** Every stored rollout; one that cannot be read back is left out (the rollout context logs what it cannot restore). */
  abstract loadAll(): Promise<readonly StoredRollout[]>;
  /** The stored rollout of one model, if any. */
  abstract load(modelName: string): Promise<StoredRollout | undefined>;
  /**
   * Stores `snapshot` as revision `expectedRevision + 1` (0: none stored yet). Throws
   * REGISTRY.STATE_CONFLICT when the stored revision is another one; once it resolves the rollout
   * survives a crash. Its errors never name a path of the server.
   */
  abstract save(snapshot: RolloutSnapshot, expectedRevision: number): Promise<StoredRollout>;
  /** Calls `listener` with every change from now on (see ModelStateStore.watch), until the returned function is called. */
  abstract watch(listener: (change: RolloutChange) => void): () => void;
}
