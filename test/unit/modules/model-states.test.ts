import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Model } from '../../../src/domain/registry/model.js';
import type { DomainEvent } from '../../../src/domain/shared/aggregate-root.js';
import { InProcessEventBus } from '../../../src/infra/messaging/in-process-event-bus.js';
import { ModelStates } from '../../../src/modules/registry/model-states.js';
import { aModelVersion } from '../support/model-version.mother.js';
import { InMemoryModelStateStore } from '../support/in-memory-stores.js';

function setUp() {
  const log: string[] = [];
  const store = new InMemoryModelStateStore(log);
  const bus = new InProcessEventBus();
  bus.subscribe<DomainEvent>('DefaultVersionChanged', (event) => log.push(`published ${event.type}`));
  const states = new ModelStates(store, bus);
  const model = Model.discover('resnet', [aModelVersion().numbered(1).ready().build(), aModelVersion().numbered(2).ready().build()]);
  return { log, store, states, model };
}

describe('ModelStates', () => {
  it('saves the model (loaded versions, default, override), then publishes its events', async () => {
    const { log, store, states, model } = setUp();
    model.makeDefault(1, new Date());
    model.changeIntents({ configOverride: '{"max_batch_size": 2}' });
    await states.save(model);
    assert.deepEqual(log, ['saved r1', 'published DefaultVersionChanged']);
    assert.deepEqual(store.states.get('resnet')!.state, {
      name: 'resnet',
      loadedVersions: [1, 2],
      unloadedVersions: [],
      defaultVersion: 1,
      configOverride: '{"max_batch_size": 2}',
    });
  });

  it("writes each save against the revision it last wrote, with the operator's intents the model holds", async () => {
    const { store, states, model } = setUp();
    model.changeIntents({ configOverride: 'x', unloadedVersions: [3], explicitVersions: [2] });
    await states.save(model);
    await states.save(model);
    assert.deepEqual(store.states.get('resnet')!.state.unloadedVersions, [3]);
    assert.deepEqual(store.states.get('resnet')!.state.explicitVersions, [2]);
    assert.equal(store.states.get('resnet')!.revision, 2);
    assert.equal(store.states.get('resnet')!.state.configOverride, 'x');
  });

  it('catches up with a revision written by a save that reported a failure, and saves again', async () => {
    const { log, store, states, model } = setUp();
    await states.save(model);
    // The store advanced behind this process's back (a write that landed, then reported an error).
    store.states.set('resnet', { revision: 5, state: store.states.get('resnet')!.state });
    model.makeDefault(1, new Date());
    await states.save(model);
    assert.equal(store.states.get('resnet')!.revision, 6);
    assert.equal(store.states.get('resnet')!.state.defaultVersion, 1);
    assert.deepEqual(log.slice(-2), ['saved r6', 'published DefaultVersionChanged']);
  });

  it('publishes nothing when the save fails: the events stay with the model', async () => {
    const { log, store, states, model } = setUp();
    model.makeDefault(1, new Date());
    store.failNext = new Error('disk full');
    await assert.rejects(states.save(model), { code: 'REGISTRY.STATE_NOT_SAVED', message: "the state of model 'resnet' could not be saved: disk full" });
    assert.deepEqual(log, []);
    assert.equal(model.pullDomainEvents().length, 1, 'the event was not pulled');
  });

  it('restores the stored states, and the next save continues from their revision', async () => {
    const { store, states, model } = setUp();
    store.states.set('resnet', { revision: 7, state: { name: 'resnet', loadedVersions: [2], unloadedVersions: [1], defaultVersion: 2 } });
    const restored = await states.restore(['resnet']);
    assert.deepEqual(restored.states.get('resnet')?.unloadedVersions, [1]);
    await states.save(model);
    assert.equal(store.states.get('resnet')!.revision, 8);
  });

  it('discards a restored state it cannot apply: later saves start from nothing, at the stored revision', async () => {
    const { store, states, model } = setUp();
    store.states.set('resnet', { revision: 3, state: { name: 'resnet', loadedVersions: [9], unloadedVersions: [1], configOverride: '{}', explicitVersions: [9] } });
    await states.restore(['resnet']);
    states.discard('resnet');
    assert.equal(states.stateOf('resnet'), undefined);
    await states.save(model);
    assert.deepEqual(store.states.get('resnet'), { revision: 4, state: { name: 'resnet', loadedVersions: [1, 2], unloadedVersions: [] } });
  });

  it('saves the loaded and default versions a change will leave, when given', async () => {
    const { store, states, model } = setUp();
    await states.save(model, { loadedVersions: [2], defaultVersion: 2 });
    assert.deepEqual(store.states.get('resnet')!.state, { name: 'resnet', loadedVersions: [2], unloadedVersions: [], defaultVersion: 2 });
  });

  it('forgets the state of a model that left, and follows a state another server applied', async () => {
    const { store, states, model } = setUp();
    await states.save(model);
    states.applied('resnet', { revision: 9, state: { name: 'resnet', loadedVersions: [2], unloadedVersions: [] } });
    assert.equal(states.revisionOf('resnet'), 9);
    store.states.set('resnet', { revision: 9, state: store.states.get('resnet')!.state });
    await states.forget('resnet');
    assert.equal(store.states.has('resnet'), false);
    assert.equal(states.revisionOf('resnet'), 0);
  });
});
