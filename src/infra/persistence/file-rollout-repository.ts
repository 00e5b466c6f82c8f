import { join } from 'node:path';
import { z } from 'zod';
import type { RolloutSnapshot } from '../../domain/rollout/rollout.js';
import { RolloutRepository, type RolloutChange, type StoredRollout } from '../../domain/rollout/rollout-repository.port.js';
import { FileRecords } from './file-records.js';
import type { RecordChange, RecordKind, StoredRecord } from './revisioned-records.js';

export interface RolloutRecord {
  readonly name: string;
  readonly rollout: RolloutSnapshot;
}

/** A stored rollout record; the rollout context owns its snapshot's shape (Rollout.restore checks it). */
const storedRolloutSchema = z.strictObject({
  revision: z.number().int().positive(),
  state: z.strictObject({ name: z.string().min(1), rollout: z.record(z.string(), z.unknown()) }),
});

export const ROLLOUT_RECORDS: RecordKind<RolloutRecord> = {
  schema: storedRolloutSchema as unknown as z.ZodType<{ revision: number; state: RolloutRecord }>,
  plain: (record) => ({ name: record.name, rollout: record.rollout }),
  fileWord: 'rollout file',
  where: 'STATE_DIR/rollouts',
  describe: (name) => `the state of model '${name}' (its rollout)`,
};

/** What a rollout repository needs of its revisioned records: FileRecords and RedisRecords both offer it. */
interface RolloutRecords {
  loadAll(): Promise<{ readonly states: readonly StoredRecord<RolloutRecord>[] }>;
  load(name: string): Promise<StoredRecord<RolloutRecord> | undefined>;
  save(record: RolloutRecord, expectedRevision: number): Promise<StoredRecord<RolloutRecord>>;
  watch(listener: (change: RecordChange<RolloutRecord>) => void): () => void;
}

/** Rollouts kept as revisioned records, one per model: in files (one server) or in Redis (replicas). */
export class RecordsRolloutRepository extends RolloutRepository {
  constructor(private readonly records: RolloutRecords) {
    super();
  }

  async loadAll(): Promise<readonly StoredRollout[]> {
    return (await this.records.loadAll()).states.map(storedRollout);
  }

  async load(modelName: string): Promise<StoredRollout | undefined> {
    const stored = await this.records.load(modelName);
    return stored && storedRollout(stored);
  }

  async save(snapshot: RolloutSnapshot, expectedRevision: number): Promise<StoredRollout> {
    return storedRollout(await this.records.save({ name: snapshot.modelName, rollout: snapshot }, expectedRevision));
  }

  watch(listener: (change: RolloutChange) => void): () => void {
    return this.records.watch(({ name, stored }) => listener({ modelName: name, stored: stored && storedRollout(stored) }));
  }
}

/** The embedded rollout store: one JSON file per model in STATE_DIR/rollouts, kept as the model states are (FileRecords). */
export class FileRolloutRepository extends RecordsRolloutRepository {
  constructor(stateDirectory: string, pollIntervalMs = 1000) {
    const records = new FileRecords(join(stateDirectory, 'rollouts'), ROLLOUT_RECORDS);
    super({
      loadAll: () => records.loadAll(),
      load: (name) => records.load(name),
      save: (record, expectedRevision) => records.save(record, expectedRevision),
      watch: (listener) => records.watch(listener, pollIntervalMs),
    });
  }
}

function storedRollout({ revision, state }: StoredRecord<RolloutRecord>): StoredRollout {
  return { revision, snapshot: state.rollout };
}
