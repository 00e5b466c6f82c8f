import { z } from 'zod';
import { ModelStateStore, type ModelState, type ModelStateChange, type StoredModelStates } from '../../domain/registry/model-state-store.port.js';
import { FileRecords } from './file-records.js';
import type { RecordKind } from './revisioned-records.js';

export { fileNameOf } from './file-records.js';

const versionsSchema = z.array(z.number().int().positive());

/** A model state as stored; the same shape in every store (the file store and the Redis one). */
const modelStateSchema = z.strictObject({
  name: z.string().min(1),
  loadedVersions: versionsSchema,
  unloadedVersions: versionsSchema,
  explicitVersions: versionsSchema.optional(),
  defaultVersion: z.number().int().positive().optional(),
  configOverride: z.string().optional(),
  // Before rollouts had a store of their own (STATE_DIR/rollouts) they were kept here: still read, ignored.
  rollout: z.record(z.string(), z.unknown()).optional(),
});

const storedModelStateSchema = z.strictObject({ revision: z.number().int().positive(), state: modelStateSchema });

/** Only the fields of ModelState, so that what is written is what is read back. */
function plainModelState(state: ModelState): ModelState {
  return {
    name: state.name,
    loadedVersions: state.loadedVersions,
    unloadedVersions: state.unloadedVersions,
    ...(state.explicitVersions !== undefined && state.explicitVersions.length > 0 && { explicitVersions: state.explicitVersions }),
    ...(state.defaultVersion !== undefined && { defaultVersion: state.defaultVersion }),
    ...(state.configOverride !== undefined && { configOverride: state.configOverride }),
  };
}

export const MODEL_STATE_RECORDS: RecordKind<ModelState> = {
  schema: storedModelStateSchema as z.ZodType<{ revision: number; state: ModelState }>,
  plain: plainModelState,
  fileWord: 'model state file',
  where: 'STATE_DIR',
  describe: (name) => `the state of model '${name}'`,
};

/**
 * The embedded model-state store (the default: nothing else to run): one JSON file per model in
 * STATE_DIR, written atomically and durably, compare-and-set per model (see FileRecords). Changes
 * made from outside the process are seen by polling every `pollIntervalMs`.
 */
export class FileModelStateStore extends ModelStateStore {
  private readonly records: FileRecords<ModelState>;

  constructor(
    directory: string,
    private readonly pollIntervalMs = 1000,
  ) {
    super();
    this.records = new FileRecords(directory, MODEL_STATE_RECORDS);
  }

  loadAll(knownNames?: readonly string[]): Promise<StoredModelStates> {
    return this.records.loadAll(knownNames);
  }

  load(name: string) {
    return this.records.load(name);
  }

  save(state: ModelState, expectedRevision: number) {
    return this.records.save(state, expectedRevision);
  }

  remove(name: string, expectedRevision: number): Promise<void> {
    return this.records.remove(name, expectedRevision);
  }

  watch(listener: (change: ModelStateChange) => void): () => void {
    return this.records.watch(listener, this.pollIntervalMs);
  }
}
