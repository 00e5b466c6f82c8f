import { ModelStateStore, type ModelState, type StoredModelState, type StoredModelStates } from '../../src/domain/registry/model-state-store.port.js';
import { FileModelStateStore } from '../../src/infra/persistence/file-model-state-store.js';

/**
 * The file store, which can be told to fail its writes as a full disk makes it fail (the error the
 * file store throws for ENOSPC: its code and what failed, no path). Reads go on working.
 */
export class FaultyStateStore extends ModelStateStore {
  private readonly inner: FileModelStateStore;
  /** While true, every save and remove fails, storing nothing. */
  failing = false;
  /** Saves and removes attempted while failing. */
  refused = 0;

  constructor(directory: string) {
    super();
    this.inner = new FileModelStateStore(directory);
  }

  loadAll(knownNames?: readonly string[]): Promise<StoredModelStates> {
    return this.inner.loadAll(knownNames);
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
