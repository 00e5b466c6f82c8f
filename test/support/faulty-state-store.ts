import { ModelStateStore, type ModelState, type ModelStateChange, type StoredModelState, type StoredModelStates } from '../../src/domain/registry/model-state-store.port.js';
import type { RolloutSnapshot } from '../../src/domain/rollout/rollout.js';
import { RolloutRepository, type RolloutChange, type StoredRollout } from '../../src/domain/rollout/rollout-repository.port.js';
import { FileModelStateStore } from '../../src/infra/persistence/file-model-state-store.js';
import { FileRolloutRepository } from '../../src/infra/persistence/file-rollout-repository.js';

/**
 * The file store, which can be told to fail its writes as a full disk makes it fail (the error the
 * file store throws for ENOSPC: its code and what failed, no path). Reads go on working. Its
 * `rollouts` (the rollout store on the same directory) fail with it.
 */
export class FaultyStateStore extends ModelStateStore {
  private readonly inner: FileModelStateStore;
  /** While true, every save and remove fails, storing nothing. */
  failing = false;
  /** Saves and removes attempted while failing. */
  refused = 0;

  /** The rollout store on the same directory, failing while this store fails. */
  readonly rollouts: RolloutRepository;

  constructor(directory: string) {
    super();
    this.inner = new FileModelStateStore(directory);
    this.rollouts = new FaultyRolloutRepository(new FileRolloutRepository(directory), () => this.failIfTold());
  }

  loadAll(knownNames?: readonly string[]): Promise<StoredModelStates> {
    return this.inner.loadAll(knownNames);
  }

  load(name: string): Promise<StoredModelState | undefined> {
    return this.inner.load(name);
  }

  watch(listener: (change: ModelStateChange) => void): () => void {
    return this.inner.watch(listener);
  }

  async save(state: ModelState, expectedRevision: number): Promise<StoredModelState> {
    this.failIfTold();
    return this.inner.save(state, expectedRevision);
  }

  async remove(name: string, expectedRevision: number): Promise<void> {
    this.failIfTold();
    return this.inner.remove(name, expectedRevision);
  }

  private failIfTold(): void {
    if (!this.failing) return;
    this.refused++;
    throw Object.assign(new Error('the model state store (STATE_DIR) failed: ENOSPC: no space left on device (write)'), { code: 'ENOSPC' });
  }
}

class FaultyRolloutRepository extends RolloutRepository {
  constructor(
    private readonly inner: RolloutRepository,
    private readonly failIfTold: () => void,
  ) {
    super();
  }

  loadAll(): Promise<readonly StoredRollout[]> {
    return this.inner.loadAll();
  }

  load(modelName: string): Promise<StoredRollout | undefined> {
    return this.inner.load(modelName);
  }

  async save(snapshot: RolloutSnapshot, expectedRevision: number): Promise<StoredRollout> {
    this.failIfTold();
    return this.inner.save(snapshot, expectedRevision);
  }

  watch(listener: (change: RolloutChange) => void): () => void {
    return this.inner.watch(listener);
  }
}
