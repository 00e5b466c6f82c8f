// ModelLifecycle against in-memory ports: loads, unloads, swaps and uploads, read from the models' states and the engine's.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { registryServices } from '../../support/application.js';
import { InMemoryModelRepository } from '../../support/in-memory-model-repository.js';
import { rejection } from '../../support/domain-error.assertions.js';

const path = InMemoryModelRepository.modelPath;

/** The registry started over a repository of `echo` (versions 1 and 2, latest 1 served) and `pair` (1 and 2, both served). */
async function started() {
  const repository = new InMemoryModelRepository()
    .withModel('echo', [1, 2], { versionPolicy: { kind: 'latest', numVersions: 1 } })
    .withModel('pair', [1, 2], { versionPolicy: { kind: 'all' } });
  const services = registryServices(repository);
  await services.startup.execute();
  return services;
}

const states = (services: Awaited<ReturnType<typeof started>>, model: string) => [...services.registry.get(model).versions].sort((a, b) => a.version - b.version).map((v) => `${v.version}:${v.state}${v.reason ? ` (${v.reason})` : ''}`);

describe('ModelLifecycle', () => {
  it('starts from the repository: what each version policy selects is READY and loaded', async () => {
    const services = await started();
    assert.deepEqual(states(services, 'echo'), ['1:UNAVAILABLE (unloaded)', '2:READY']);
    assert.deepEqual(states(services, 'pair'), ['1:READY', '2:READY']);
    assert.deepEqual(services.engine.loadedKeys(), ['echo/2', 'pair/1', 'pair/2']);
  });

  describe('loadVersion / unloadVersion', () => {
    it('loads a version the policy left out; it stays loaded (saved as explicit) until unloaded', async () => {
      const services = await started();
      const version = await services.lifecycle.loadVersion('echo', 1);
      assert.equal(version.state, 'READY');
      assert.deepEqual(services.engine.loadedKeys(), ['echo/1', 'echo/2', 'pair/1', 'pair/2']);
      assert.deepEqual(services.store.stateOf('echo')?.explicitVersions, [1]);
      assert.equal(services.registry.get('echo').servingVersion()?.version, 2, 'the highest READY version still serves');
    });

    it('unloads a version: drained, released, UNAVAILABLE "unloaded", and saved so (a restart does not bring it back)', async () => {
      const services = await started();
      await services.lifecycle.unloadVersion('pair', 2);
      assert.deepEqual(states(services, 'pair'), ['1:READY', '2:UNAVAILABLE (unloaded)']);
      assert.deepEqual(services.engine.loadedKeys(), ['echo/2', 'pair/1']);
      assert.deepEqual(services.traffic.drained, ['pair/2']);
      assert.deepEqual(services.store.stateOf('pair')?.unloadedVersions, [2]);
      assert.equal(services.registry.get('pair').servingVersion()?.version, 1);
    });

    it('an unload whose state cannot be saved leaves the version serving', async () => {
      const services = await started();
      services.store.failingSaves(1);
      const error = await rejection(services.lifecycle.unloadVersion('pair', 2));
      assert.equal(error.code, 'REGISTRY.STATE_NOT_SAVED');
      assert.deepEqual(states(services, 'pair'), ['1:READY', '2:READY']);
      assert.deepEqual(services.engine.loadedKeys(), ['echo/2', 'pair/1', 'pair/2']);
    });
  });

  describe('makeDefault (the hot swap)', () => {
    it('loads the version, switches routing to it, and retires what the policy no longer keeps', async () => {
      const services = await started();
      await services.lifecycle.uploadVersion('echo', 3, Uint8Array.of(3));
      const swap = await services.lifecycle.makeDefault('echo', 3);
      assert.deepEqual(swap, { from: 2, to: 3 });
      const echo = services.registry.get('echo');
      assert.equal(echo.servingVersion()?.version, 3);
      assert.equal(echo.defaultVersion, 3);
      assert.deepEqual(states(services, 'echo'), ['1:UNAVAILABLE (unloaded)', '2:UNAVAILABLE (unloaded)', '3:READY'], 'latest(1): the old version is retired');
      assert.deepEqual(services.engine.loadedKeys(), ['echo/3', 'pair/1', 'pair/2']);
      assert.deepEqual(services.traffic.drained, ['echo/2'], 'the retired version was drained before its release');
      assert.equal(services.store.stateOf('echo')?.defaultVersion, 3);
    });

    it('a version that fails to load: the old one serves on, the load error is the answer', async () => {
      const services = await started();
      services.engine.failingLoad(path('echo', 1), 'Protobuf parsing failed');
      const error = await rejection(services.lifecycle.makeDefault('echo', 1));
      assert.equal(error.code, 'REGISTRY.LOAD_FAILED');
      const echo = services.registry.get('echo');
      assert.equal(echo.servingVersion()?.version, 2);
      assert.equal(echo.defaultVersion, undefined, 'the pin taken for the swap is let go');
      assert.deepEqual(services.engine.loadedKeys(), ['echo/2', 'pair/1', 'pair/2']);
    });

    it('a swap whose state cannot be saved: routing does not switch and the version loaded for it is unloaded again', async () => {
      const services = await started();
      services.store.failingSaves(1);
      const error = await rejection(services.lifecycle.makeDefault('echo', 1));
      assert.equal(error.code, 'REGISTRY.STATE_NOT_SAVED');
      assert.match(error.message, /version 2 serves on, and version 1 was unloaded again/);
      assert.equal(services.registry.get('echo').servingVersion()?.version, 2);
      assert.deepEqual(services.engine.loadedKeys(), ['echo/2', 'pair/1', 'pair/2']);
    });
  });

  describe('uploadVersion', () => {
    it('adds a version that loads, without serving it', async () => {
      const services = await started();
      const { sha256 } = await services.lifecycle.uploadVersion('echo', 3, Uint8Array.of(1, 2, 3));
      assert.equal(sha256, '039058c6f2c0cb492c533b0a4d14ef77cc0f78abccced5287d84a1a2011cfb81');
      assert.deepEqual(services.repository.versionsOf('echo'), [1, 2, 3]);
      assert.deepEqual(states(services, 'echo'), ['1:UNAVAILABLE (unloaded)', '2:READY', '3:UNAVAILABLE (unloaded)']);
      assert.deepEqual(services.engine.loadedKeys(), ['echo/2', 'pair/1', 'pair/2'], 'the check instance is released');
    });

    it('refuses a file that does not load: nothing is added, nothing stays loaded', async () => {
      const services = await started();
      services.engine.failingLoad('/repository/echo/.upload-0000000000000000/model.onnx', 'not an ONNX model');
      const error = await rejection(services.lifecycle.uploadVersion('echo', 3, Uint8Array.of(0)));
      assert.equal(error.code, 'REGISTRY.LOAD_FAILED');
      assert.match(error.message, /^the uploaded model does not load: Load model from echo\/3\/model\.onnx failed: not an ONNX model$/);
      assert.deepEqual(services.repository.versionsOf('echo'), [1, 2]);
      assert.deepEqual(services.engine.loadedKeys(), ['echo/2', 'pair/1', 'pair/2']);
    });
  });

  describe("Triton's model load and unload", () => {
    it('a load with a configuration override reloads READY versions beside themselves and releases the old instances', async () => {
      const services = await started();
      await services.lifecycle.loadModel('pair', JSON.stringify({ versionPolicy: { kind: 'all' }, instanceCount: 2 }));
      const pair = services.registry.get('pair');
      assert.deepEqual([...pair.versions].sort((a, b) => a.version - b.version).map((v) => [v.state, v.key.toString(), v.config?.instanceCount]), [
        ['READY', 'pair/1#2', 2],
        ['READY', 'pair/2#2', 2],
      ]);
      assert.deepEqual(services.engine.loadedKeys(), ['echo/2', 'pair/1#2', 'pair/2#2']);
      assert.deepEqual([...services.traffic.drained].sort(), ['pair/1', 'pair/2']);
    });

    it('an unload releases every version of the model', async () => {
      const services = await started();
      await services.lifecycle.unloadModel('pair');
      assert.deepEqual(states(services, 'pair'), ['1:UNAVAILABLE (unloaded)', '2:UNAVAILABLE (unloaded)']);
      assert.deepEqual(services.engine.loadedKeys(), ['echo/2']);
      assert.equal(services.registry.get('pair').isReady, false);
    });
  });
});

describe('TritonRepository', () => {
  it("indexes every model's versions with their states; ready only: the READY ones", async () => {
    const services = await started();
    assert.deepEqual(await services.triton.index(true), [
      { name: 'echo', version: '2', state: 'READY', reason: '' },
      { name: 'pair', version: '2', state: 'READY', reason: '' },
      { name: 'pair', version: '1', state: 'READY', reason: '' },
    ]);
    assert.deepEqual((await services.triton.index(false)).map((entry) => `${entry.name}/${entry.version}:${entry.state}`), ['echo/2:READY', 'echo/1:UNAVAILABLE', 'pair/2:READY', 'pair/1:READY']);
  });

  it("a load's refusal says \"failed to load '<m>', <why>\" (Triton's words), with its cause's code", async () => {
    const services = await started();
    const unknownParameter = await rejection(services.triton.load('echo', { file: 'x' }));
    assert.equal(unknownParameter.code, 'ADMIN.INVALID_REQUEST');
    assert.match(unknownParameter.message, /^failed to load 'echo', parameters\.file is not supported/);
    const badOverride = await rejection(services.triton.load('echo', { config: '[1]' }));
    assert.equal(badOverride.code, 'REGISTRY.INVALID_CONFIG');
    assert.match(badOverride.message, /^failed to load 'echo', model 'echo': the configuration override is invalid/);
    assert.equal(services.registry.get('echo').servingVersion()?.version, 2, 'a refused load changes nothing');
  });

  it('loads and unloads a model', async () => {
    const services = await started();
    await services.triton.unload('echo');
    assert.equal(services.registry.get('echo').isReady, false);
    await services.triton.load('echo', {});
    assert.equal(services.registry.get('echo').servingVersion()?.version, 2);
    assert.deepEqual(services.engine.loadedKeys(), ['echo/2', 'pair/1', 'pair/2']);
  });
});
