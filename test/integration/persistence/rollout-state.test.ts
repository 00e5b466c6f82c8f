// FileRolloutRepository keeps a model's rollout snapshot (STATE_DIR/rollouts): what a restart resumes from.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileNameOf } from '../../../src/infra/persistence/file-records.js';
import { FileRolloutRepository } from '../../../src/infra/persistence/file-rollout-repository.js';
import { FileModelStateStore } from '../../../src/infra/persistence/file-model-state-store.js';
import { Rollout } from '../../../src/domain/rollout/rollout.js';
import type { RolloutChange } from '../../../src/domain/rollout/rollout-repository.port.js';

describe('FileRolloutRepository', () => {
  let directory: string;
  const rollout = JSON.parse(JSON.stringify(Rollout.start('resnet', { stable: 1, canary: { version: 2, weight: 10 }, rules: [] }, () => true, new Date('2024-01-01T00:00:00Z')).snapshot()));

  before(async () => {
    directory = await mkdtemp(join(tmpdir(), 'rollout-state-'));
  });
  after(() => rm(directory, { recursive: true, force: true }));

  it('writes the rollout into a file of its own under STATE_DIR/rollouts', async () => {
    const store = new FileRolloutRepository(join(directory, 'written'));
    await store.save(rollout, 0);
    const file = JSON.parse(await readFile(join(directory, 'written', 'rollouts', fileNameOf('resnet')), 'utf8'));
    assert.deepEqual(file, { revision: 1, state: { name: 'resnet', rollout } });
  });

  it('returns the rollout from save, and reads it back from a new store (a restart)', async () => {
    const store = new FileRolloutRepository(join(directory, 'read'));
    const saved = await store.save(rollout, 0);
    assert.deepEqual(saved, { revision: 1, snapshot: rollout }, 'save returns what it wrote');
    assert.deepEqual(await new FileRolloutRepository(join(directory, 'read')).loadAll(), [saved], 'loadAll reads it back');
    assert.deepEqual(await new FileRolloutRepository(join(directory, 'read')).load('resnet'), saved);
    assert.ok(Rollout.restore(saved.snapshot), 'and it restores');
  });

  it('is compare-and-set on the revision', async () => {
    const store = new FileRolloutRepository(join(directory, 'cas'));
    await store.save(rollout, 0);
    await assert.rejects(store.save(rollout, 0), { code: 'REGISTRY.STATE_CONFLICT' });
    assert.equal((await store.save(rollout, 1)).revision, 2);
  });

  it('sees, by polling, a rollout written by another process', async () => {
    const stateDir = join(directory, 'watched');
    const writer = new FileRolloutRepository(stateDir);
    await writer.save(rollout, 0);
    const changes: RolloutChange[] = [];
    let seen!: () => void;
    const changed = new Promise<void>((resolve) => (seen = resolve));
    const unwatch = new FileRolloutRepository(stateDir, 20).watch((change) => {
      changes.push(change);
      seen();
    });
    try {
      // The first poll takes stock; a later write is a change.
      await new Promise((resolve) => setTimeout(resolve, 60));
      await writer.save({ ...rollout, phase: 'ABORTED' }, 1);
      await changed;
      assert.deepEqual(changes, [{ modelName: 'resnet', stored: { revision: 2, snapshot: { ...rollout, phase: 'ABORTED' } } }]);
    } finally {
      unwatch();
    }
  });

  it('a model state file written before rollouts had their own store (with a rollout in it) is still read', async () => {
    const stateDir = join(directory, 'legacy');
    await new FileModelStateStore(stateDir).save({ name: 'resnet', loadedVersions: [1], unloadedVersions: [] }, 0);
    await writeFile(join(stateDir, fileNameOf('resnet')), JSON.stringify({ revision: 2, state: { name: 'resnet', loadedVersions: [1, 2], unloadedVersions: [], rollout } }));
    const { states, unreadable } = await new FileModelStateStore(stateDir).loadAll(['resnet']);
    assert.deepEqual(unreadable, []);
    assert.deepEqual(states, [{ revision: 2, state: { name: 'resnet', loadedVersions: [1, 2], unloadedVersions: [] } }]);
  });
});
