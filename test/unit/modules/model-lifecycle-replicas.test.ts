// ModelLifecycle on in-memory doubles: servers sharing one state store, repository and locks follow
// each other's changes (ModelLifecycle.follow), and each operation first catches up.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Model } from '../../../src/domain/registry/model.js';
import { ModelVersion } from '../../../src/domain/registry/model-version.js';
import { InMemoryModelStateStore } from '../support/in-memory-stores.js';
import { aServer, InMemoryLocks } from '../support/in-memory-registry.js';
import { InMemoryModelRepository } from '../support/in-memory-model-repository.js';

/** Two servers that loaded version 1 of `m` (versions 1 and 2 in the shared repository), as at start. */
async function twoServers() {
  const store = new InMemoryModelStateStore();
  const repository = new InMemoryModelRepository();
  repository.withModel('m', [1, 2]);
  const locks = new InMemoryLocks();
  const servers = [aServer(store, repository, locks), aServer(store, repository, locks)] as const;
  for (const server of servers) {
    const model = Model.discover('m', [ModelVersion.register('m', 1, '/repo/m/1/model.onnx'), ModelVersion.notLoaded('m', 2, '/repo/m/2/model.onnx')]);
    server.registry.add(model);
    await server.lifecycle['loader'].load(model, 1, {});
    server.registry.finishLoading();
  }
  return { store, repository, servers };
}

const serving = (server: ReturnType<typeof aServer>) => server.registry.get('m').servingVersion()?.version;
const ready = (server: ReturnType<typeof aServer>) => server.registry.get('m').readyVersions.map((v) => v.version);

describe('ModelLifecycle across servers sharing a state store', () => {
  it("a swap on one server is applied by the other: the new version loaded, switched to, the old one drained then unloaded", async () => {
    const { store, servers: [a, b] } = await twoServers();
    await a.lifecycle.makeDefault('m', 2);
    assert.equal(serving(a), 2);
    await b.lifecycle.follow('m', store.states.get('m'));
    assert.equal(serving(b), 2);
    assert.deepEqual(ready(b), [2], 'the policy (latest 1) retires version 1');
    assert.deepEqual(b.engine.loadedKeys(), ['m/2']);
    assert.deepEqual(b.traffic.drained, ['m/1'], 'version 1 drained before it was unloaded');
    assert.equal(b.states.revisionOf('m'), store.states.get('m')!.revision);
  });

  it("a server's own save coming back is skipped by its revision", async () => {
    const { store, servers: [a] } = await twoServers();
    await a.lifecycle.makeDefault('m', 2);
    const loadedBefore = a.engine.loadedKeys();
    await a.lifecycle.follow('m', store.states.get('m'));
    assert.deepEqual(a.engine.loadedKeys(), loadedBefore);
  });

  it('an operation on a server that missed a change catches up first, and saves on top of it (no conflict)', async () => {
    const { store, servers: [a, b] } = await twoServers();
    await a.lifecycle.makeDefault('m', 2);
    // b never saw the notification; its own change starts from what is stored.
    await b.lifecycle.loadVersion('m', 1);
    assert.deepEqual(ready(b).sort(), [1, 2]);
    assert.equal(serving(b), 2, 'the swap was applied before the load');
    assert.deepEqual(store.states.get('m')!.state.explicitVersions, [1]);
    assert.equal(store.states.get('m')!.revision, 2);
  });

  it('a configuration override is followed: READY versions reload with it', async () => {
    const { store, servers: [a, b] } = await twoServers();
    // The in-memory repository reads an override in the declared form (maxBatchSize).
    await a.lifecycle.loadModel('m', '{"maxBatchSize": 4}');
    await b.lifecycle.follow('m', store.states.get('m'));
    const version = b.registry.get('m').version(2);
    assert.equal(b.registry.get('m').configOverride, '{"maxBatchSize": 4}');
    assert.equal(version.isReady, true);
    assert.equal(version.config?.maxBatchSize, 4);
  });

  it('an upload on one server is listed (not loaded) by the other', async () => {
    const { store, servers: [a, b] } = await twoServers();
    await a.lifecycle.uploadVersion('m', 3, new Uint8Array([1]));
    await b.lifecycle.follow('m', store.states.get('m'));
    const version = b.registry.get('m').version(3);
    assert.equal(version.isReady, false);
    assert.equal(version.neverLoaded, true);
  });

  it("an unload on one server is followed, and the operator's intent (unloaded on purpose) goes with it", async () => {
    const { store, servers: [a, b] } = await twoServers();
    await a.lifecycle.unloadModel('m');
    await b.lifecycle.follow('m', store.states.get('m'));
    assert.deepEqual(ready(b), []);
    assert.deepEqual(b.registry.get('m').intents.unloadedVersions, [1]);
  });

  it('a model that left the repository has its saved state removed at the next operation on it', async () => {
    const { store, repository, servers: [a] } = await twoServers();
    await a.lifecycle.makeDefault('m', 2);
    repository.withoutModel('m');
    await assert.rejects(a.lifecycle.makeDefault('m', 2), { code: 'REGISTRY.MODEL_NOT_FOUND' });
    assert.equal(store.states.has('m'), false);
  });
});
