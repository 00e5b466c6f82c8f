import { join } from 'node:path';
import { z } from 'zod';
import type { RolloutSnapshot } from '../../domain/rollout/rollout.js';
import { RolloutRepository, type RolloutChange, type StoredRollout } from '../../domain/rollout/rollout-repository.port.js';
import { FileRecords } from './file-records.js';
import type { RecordKind, StoredRecord } from './revisioned-records.js';

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

/** The embedded rollout store: one JSON file per model in STATE_DIR/rollouts, kept as the model states are (FileRecords). */
export class FileRolloutRepository extends RolloutRepository {
  private readonly records: FileRecords<RolloutRecord>;

  constructor(
    stateDirectory: string,
    private readonly pollIntervalMs = 1000,
  ) {
    super();
    this.records = new FileRecords(join(stateDirectory, 'rollouts'), ROLLOUT_RECORDS);
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
    return this.records.watch(({ name, stored }) => listener({ modelName: name, stored: stored && storedRollout(stored) }), this.pollIntervalMs);
  }
}

export function storedRollout({ revision, state }: StoredRecord<RolloutRecord>): StoredRollout {
  return { revision, snapshot: state.rollout };
}
