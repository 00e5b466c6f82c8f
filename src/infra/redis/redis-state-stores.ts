import { ModelStateStore, type ModelState, type ModelStateChange, type StoredModelState, type StoredModelStates } from '../../domain/registry/model-state-store.port.js';
import { MODEL_STATE_RECORDS } from '../persistence/file-model-state-store.js';
import { RecordsRolloutRepository, ROLLOUT_RECORDS } from '../persistence/file-rollout-repository.js';
import type { RedisConnection } from './redis-connection.js';
import { RedisRecords } from './redis-records.js';

/** The model states that replicas share, in Redis (REDIS_URL): compare-and-set per model, each change announced (RedisRecords). */
export class RedisModelStateStore extends ModelStateStore {
  private readonly records: RedisRecords<ModelState>;

  constructor(redis: RedisConnection) {
    super();
    this.records = new RedisRecords(redis, 'model-states', MODEL_STATE_RECORDS);
  }

  loadAll(): Promise<StoredModelStates> {
    return this.records.loadAll();
  }

  load(name: string): Promise<StoredModelState | undefined> {
    return this.records.load(name);
  }

  save(state: ModelState, expectedRevision: number): Promise<StoredModelState> {
    return this.records.save(state, expectedRevision);
  }

  remove(name: string, expectedRevision: number): Promise<void> {
    return this.records.remove(name, expectedRevision);
  }

  watch(listener: (change: ModelStateChange) => void): () => void {
    return this.records.watch(listener);
  }
}

/** The rollouts that replicas share, in Redis (REDIS_URL), kept as the model states are. */
export class RedisRolloutRepository extends RecordsRolloutRepository {
  constructor(redis: RedisConnection) {
    super(new RedisRecords(redis, 'rollouts', ROLLOUT_RECORDS));
  }
}
