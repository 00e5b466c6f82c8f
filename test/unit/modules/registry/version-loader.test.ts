// VersionLoader against in-memory ports: what a load, a reload and a check leave loaded, and the version's state.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Model } from '../../../../src/domain/registry/model.js';
import { ModelVersion } from '../../../../src/domain/registry/model-version.js';
import type { DeclaredModelConfig } from '../../../../src/domain/registry/model-config.js';
import { ModelVersionId, RuntimeKey } from '../../../../src/domain/shared/model-version-id.js';
import { registryServices } from '../../support/application.js';
import { InMemoryModelRepository } from '../../support/in-memory-model-repository.js';
import { rejection } from '../../support/domain-error.assertions.js';

const path = InMemoryModelRepository.modelPath;

function aModel(name: string, versions: readonly number[]): Model {
  return Model.discover(name, versions.map((v) => ModelVersion.register(name, v, path(name, v))));
}

describe('VersionLoader', () => {
  describe('load', () => {
    it("makes the version READY with the configuration completed from the file's signature, loaded under its key", async () => {
      const { loader, engine } = registryServices();
      const model = aModel('echo', [1]);
      await loader.load(model, 1, { instanceCount: 2 });
      const version = model.version(1);
      assert.equal(version.state, 'READY');
      assert.equal(version.executionProvider, 'cpu');
      assert.equal(version.config?.platform, 'onnxruntime_onnx');
      assert.equal(version.config?.backend, 'onnxruntime');
      assert.equal(version.config?.maxBatchSize, 8, 'a dynamic first dimension: batching by default');
      assert.deepEqual(version.config?.inputs, [{ name: 'x', datatype: 'FP32', dims: [2] }]);
      assert.deepEqual(engine.loadedKeys(), ['echo/1']);
      assert.equal(engine.loaded('echo/1')?.options.instanceCount, 2);
      assert.deepEqual(model.pullDomainEvents().map((event) => event.type), ['ModelVersionLoaded', 'DefaultVersionChanged']);
    });

    it('a file that does not load: UNAVAILABLE with the reason (no path of the server), LOAD_FAILED, nothing left loaded', async () => {
      const { loader, engine } = registryServices();
      engine.failingLoad(path('broken', 1), 'Protobuf parsing failed');
      const model = aModel('broken', [1]);
      const error = await rejection(loader.load(model, 1, {}));
      assert.equal(error.code, 'REGISTRY.LOAD_FAILED');
      assert.match(error.message, /model 'broken' version 1 failed to load: .*Protobuf parsing failed/);
      assert.equal(model.version(1).state, 'UNAVAILABLE');
      assert.equal(model.version(1).reason, 'Load model from broken/1/model.onnx failed: Protobuf parsing failed');
      assert.deepEqual(engine.loadedKeys(), []);
    });

    it('a platform no backend serves: refused before the file is loaded, naming what is served', async () => {
      const { loader, engine } = registryServices();
      const model = aModel('tf', [1]);
      const error = await rejection(loader.load(model, 1, { platform: 'tensorflow_savedmodel' }));
      assert.match(error.message, /platform 'tensorflow_savedmodel' is not served here; the only platform is 'onnxruntime_onnx'/);
      assert.equal(model.version(1).state, 'UNAVAILABLE');
      assert.deepEqual(engine.loadedKeys(), []);
    });

    const warmup: DeclaredModelConfig = {
      modelWarmup: [{ name: 'ones', batchSize: 4, count: 2, inputs: [{ name: 'x', datatype: 'FP32', dims: [2], data: { kind: 'file', file: 'x.bin' } }] }],
    };

    it('runs the configured warm-up samples on the loaded instances: batch_size rows, the file resolved in the repository', async () => {
      const { loader, engine } = registryServices();
      const model = aModel('warm', [1]);
      await loader.load(model, 1, warmup);
      assert.equal(model.version(1).state, 'READY');
      assert.deepEqual(engine.loaded('warm/1')?.warmedUpWith, [
        { name: 'ones', runs: 2, inputs: [{ name: 'x', datatype: 'FP32', shape: [4, 2], rows: 4, values: { kind: 'file', file: 'x.bin', path: '/repository/warm/warmup/x.bin' } }] },
      ]);
    });

    it('a warm-up that fails: UNAVAILABLE, and the loaded instances are released', async () => {
      const { loader, engine } = registryServices();
      engine.failingWarmup(path('warm', 1), 'Non-zero status code');
      const model = aModel('warm', [1]);
      const error = await rejection(loader.load(model, 1, warmup));
      assert.match(error.message, /warm-up sample 'ones' failed: Non-zero status code/);
      assert.equal(model.version(1).state, 'UNAVAILABLE');
      assert.deepEqual(engine.loadedKeys(), []);
    });
  });

  describe('reload', () => {
    it('loads the new configuration beside the serving instances, switches the version to them, and hands back the old key', async () => {
      const { loader, engine } = registryServices();
      const model = aModel('echo', [1]);
      await loader.load(model, 1, {});
      const old = await loader.reload(model, 1, { instanceCount: 3 });
      assert.equal(old.toString(), 'echo/1');
      const version = model.version(1);
      assert.equal(version.state, 'READY', 'it never stopped serving');
      assert.equal(version.key.toString(), 'echo/1#2');
      assert.equal(version.config?.instanceCount, 3);
      assert.deepEqual(engine.loadedKeys(), ['echo/1', 'echo/1#2'], 'the old instances are the caller\'s to drain and release');
      await loader.reload(model, 1, {});
      assert.equal(model.version(1).key.toString(), 'echo/1#3');
    });

    it('a reload that fails leaves the version serving as it was', async () => {
      const { loader, engine } = registryServices();
      const model = aModel('echo', [1]);
      await loader.load(model, 1, {});
      const error = await rejection(loader.reload(model, 1, { inputs: [{ name: 'nope', datatype: 'FP32', dims: [2] }] }));
      assert.match(error.message, /failed to reload, and keeps serving as before: input 'nope' is not in the model file/);
      const version = model.version(1);
      assert.equal(version.state, 'READY');
      assert.equal(version.key.toString(), 'echo/1');
      assert.equal(version.config?.instanceCount, 1);
      assert.deepEqual(engine.loadedKeys(), ['echo/1']);
    });
  });

  describe('check (an uploaded file)', () => {
    const key = RuntimeKey.uploadCheck(ModelVersionId.of('up', 2));

    it('loads the file in one instance of its own and releases it', async () => {
      const { loader, engine } = registryServices();
      await loader.check('/repository/up/.upload-1/model.onnx', key, { instanceCount: 4 });
      assert.deepEqual(engine.loadedKeys(), []);
    });

    it('a file that does not load is refused, and nothing stays loaded', async () => {
      const { loader, engine } = registryServices();
      engine.failingLoad('/repository/up/.upload-1/model.onnx', 'not a model');
      await assert.rejects(loader.check('/repository/up/.upload-1/model.onnx', key, {}), /not a model/);
      assert.deepEqual(engine.loadedKeys(), []);
    });
  });
});
