// FileModelStateStore keeps a model's rollout snapshot: what a restart resumes from.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileModelStateStore, fileNameOf } from '../../../src/infra/persistence/file-model-state-store.js';
import type { ModelState } from '../../../src/domain/registry/model-state-store.port.js';
import { Rollout } from '../../../src/domain/rollout/rollout.js';


describe('FileModelStateStore: rollouts', () => {
  let directory: string;
  const rollout = Rollout.start('resnet', { stable: 1, canary: { version: 2, weight: 10 }, rules: [] }, () => true, new Date('2024-01-01T00:00:00Z')).snapshot();
  const state: ModelState = { name: 'resnet', loadedVersions: [1, 2], unloadedVersions: [], rollout: JSON.parse(JSON.stringify(rollout)) };

  before(async () => {
    directory = await mkdtemp(join(tmpdir(), 'rollout-state-'));
  });
  after(() => rm(directory, { recursive: true, force: true }));

  it('writes the rollout into the model state file', async () => {
    const store = new FileModelStateStore(join(directory, 'written'));
    await store.save(state, 0);
    const file = JSON.parse(await readFile(join(directory, 'written', fileNameOf('resnet')), 'utf8'));
    assert.deepEqual(file.state.rollout, state.rollout);
  });

  it('returns the rollout from save, and reads it back from a new store (a restart)', async () => {
    const store = new FileModelStateStore(join(directory, 'read'));
    const saved = await store.save(state, 0);
    assert.deepEqual(saved.state.rollout, state.rollout, 'save returns what it wrote');
    const [loaded] = (await new FileModelStateStore(join(directory, 'read')).loadAll()).states;
    assert.deepEqual(loaded?.state.rollout, state.rollout, 'loadAll reads it back');
    assert.ok(Rollout.restore(loaded!.state.rollout!), 'and it restores');
  });
});
