import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ModelVersion } from '../../../../src/domain/registry/model-version.js';
import { Model } from '../../../../src/domain/registry/model.js';
import { assertDomainError } from '../../support/domain-error.assertions.js';
import { FILE_SHA256, LOADED_AT, aModelConfig, aModelVersion } from '../../support/model-version.mother.js';

const version = (number: number) => aModelVersion().of('resnet').numbered(number);

describe('Model', () => {
  it('lists its versions highest first', () => {
    const model = Model.discover('resnet', [version(1).build(), version(3).build(), version(2).build()]);
    assert.deepEqual(model.versions.map((v) => v.version), [3, 2, 1]);
  });

  it('refuses a version of another model', () => {
    assertDomainError(() => Model.discover('resnet', [aModelVersion().of('bert').build()]), 'REGISTRY.INVALID_TRANSITION', "'bert'", "'resnet'");
  });

  describe('versionToServe', () => {
    const model = () =>
      Model.discover('resnet', [
        version(1).ready().build(),
        version(2).ready().build(),
        version(3).failed('the file is corrupt').build(),
        version(4).loading().build(),
      ]);

    it('serves the highest READY version when none is named', () => {
      assert.equal(model().versionToServe().version, 2);
    });

    it('serves the named version when it is READY, even if a newer one is', () => {
      assert.equal(model().versionToServe(1).version, 1);
    });

    it('refuses an unknown version with VERSION_NOT_FOUND, listing the versions it has', () => {
      assertDomainError(() => model().versionToServe(9), 'REGISTRY.VERSION_NOT_FOUND', "model 'resnet'", 'no version 9', 'versions: 4, 3, 2, 1');
    });

    it('refuses a failed version with VERSION_NOT_READY, giving the reason', () => {
      assertDomainError(() => model().versionToServe(3), 'REGISTRY.VERSION_NOT_READY', 'version 3', "'resnet'", 'UNAVAILABLE', 'the file is corrupt');
    });

    it('refuses a version still loading with VERSION_NOT_READY', () => {
      assertDomainError(() => model().versionToServe(4), 'REGISTRY.VERSION_NOT_READY', 'version 4', 'LOADING');
    });

    it('without a READY version, says why each version is not ready', () => {
      const failing = Model.discover('resnet', [version(1).failed('out of memory').build(), version(2).loading().build()]);
      assertDomainError(
        () => failing.versionToServe(),
        'REGISTRY.VERSION_NOT_READY',
        "model 'resnet' has no READY version",
        'version 2 is LOADING',
        'version 1 is UNAVAILABLE (out of memory)',
      );
    });

    it('a model with no versions reports its problem', () => {
      const empty = Model.discover('resnet', [], 'no version directory under models/resnet');
      assertDomainError(() => empty.versionToServe(), 'REGISTRY.VERSION_NOT_READY', "model 'resnet'", 'no version directory under models/resnet');
    });

    it('a model with no versions has no version to name', () => {
      const empty = Model.discover('resnet', [], 'no version directory');
      assertDomainError(() => empty.versionToServe(1), 'REGISTRY.VERSION_NOT_FOUND', 'no version 1', 'versions: none');
    });

    it('follows its versions: an unloaded version is no longer served', () => {
      const [newest, older] = [version(2).ready().build(), version(1).ready().build()];
      const served = Model.discover('resnet', [newest, older]);
      newest.beginUnload();
      assert.equal(served.versionToServe().version, 1);
    });
  });

  describe('isReady', () => {
    it('is true when at least one version is READY', () => {
      assert.equal(Model.discover('resnet', [version(1).failed().build(), version(2).ready().build()]).isReady, true);
    });

    it('is false when no version is READY', () => {
      assert.equal(Model.discover('resnet', [version(1).failed().build(), version(2).loading().build()]).isReady, false);
    });

    it('is false for a model with no versions', () => {
      assert.equal(Model.discover('resnet', [], 'no version directory').isReady, false);
    });

    it('becomes false once its only READY version unloads', () => {
      const only = version(1).ready().build();
      const model = Model.discover('resnet', [only]);
      only.beginUnload();
      assert.equal(model.isReady, false);
    });
  });

  describe('transitions and their events', () => {
    const AT = new Date('2024-05-06T07:08:09.000Z');
    const loaded = { config: aModelConfig(), executionProvider: 'cpu', fileSha256: FILE_SHA256, loadedAt: LOADED_AT };
    const typesOf = (model: Model) => model.pullDomainEvents().map((e) => e.type);

    it('loading a version records ModelVersionLoaded, and DefaultVersionChanged when it takes over', () => {
      const model = Model.discover('resnet', [version(1).ready().build(), version(2).build()]);
      model.startLoading(2);
      model.finishLoading(2, loaded);
      const events = model.pullDomainEvents();
      assert.deepEqual(events, [
        { type: 'ModelVersionLoaded', occurredAt: LOADED_AT, modelName: 'resnet', version: 2, fileSha256: FILE_SHA256 },
        { type: 'DefaultVersionChanged', occurredAt: LOADED_AT, modelName: 'resnet', from: 1, to: 2 },
      ]);
      assert.equal(model.version(2).fileSha256, FILE_SHA256);
      assert.deepEqual(model.pullDomainEvents(), [], 'pulling empties the record');
    });

    it('a failed load records ModelVersionFailed with its reason, and the serving version stays', () => {
      const model = Model.discover('resnet', [version(1).ready().build(), version(2).build()]);
      model.startLoading(2);
      model.failLoading(2, 'not an ONNX file', AT);
      assert.deepEqual(model.pullDomainEvents(), [{ type: 'ModelVersionFailed', occurredAt: AT, modelName: 'resnet', version: 2, reason: 'not an ONNX file' }]);
      assert.equal(model.versionToServe().version, 1);
    });

    it('makeDefault pins a READY version, even an older one, and records the change', () => {
      const model = Model.discover('resnet', [version(1).ready().build(), version(2).ready().build()]);
      model.makeDefault(1, AT);
      assert.equal(model.defaultVersion, 1);
      assert.equal(model.versionToServe().version, 1);
      assert.equal(model.versionToServe(2).version, 2, 'a named version still serves');
      assert.deepEqual(model.pullDomainEvents(), [{ type: 'DefaultVersionChanged', occurredAt: AT, modelName: 'resnet', from: 2, to: 1 }]);
      model.makeDefault(1, AT);
      assert.deepEqual(typesOf(model), [], 'no change, no event');
    });

    for (const [state, build] of [
      ['LOADING', version(2).loading()],
      ['UNAVAILABLE', version(2).failed()],
      ['UNKNOWN', version(2)],
    ] as const) {
      it(`makeDefault refuses a ${state} version and changes nothing`, () => {
        const model = Model.discover('resnet', [version(1).ready().build(), build.build()]);
        assertDomainError(() => model.makeDefault(2, AT), 'REGISTRY.INVALID_TRANSITION', 'only a READY version can become the default', state);
        assert.equal(model.defaultVersion, undefined);
        assert.equal(model.versionToServe().version, 1);
        assert.deepEqual(typesOf(model), []);
      });
    }

    it('refuses to unload the pinned default until another is the default, unless forced', () => {
      const model = Model.discover('resnet', [version(1).ready().build(), version(2).ready().build()]);
      model.makeDefault(2, AT);
      model.pullDomainEvents();
      assertDomainError(() => model.startUnloading(2, AT), 'REGISTRY.INVALID_TRANSITION', 'is the default version', 'make another READY version the default first');
      assert.equal(model.version(2).state, 'READY');

      model.makeDefault(1, AT);
      model.startUnloading(2, AT);
      model.finishUnloading(2, AT);
      assert.deepEqual(typesOf(model), ['DefaultVersionChanged', 'ModelVersionUnloaded']);
      assert.equal(model.version(2).state, 'UNAVAILABLE');
    });

    it('refuses to unload the only READY version unless forced; forced, the model has none left', () => {
      const model = Model.discover('resnet', [version(1).ready().build()]);
      assertDomainError(() => model.startUnloading(1, AT), 'REGISTRY.INVALID_TRANSITION', 'only READY version', 'force');
      model.startUnloading(1, AT, { force: true });
      model.finishUnloading(1, AT);
      assert.deepEqual(model.pullDomainEvents(), [
        { type: 'DefaultVersionChanged', occurredAt: AT, modelName: 'resnet', from: 1, to: undefined },
        { type: 'ModelVersionUnloaded', occurredAt: AT, modelName: 'resnet', version: 1 },
      ]);
      assert.equal(model.isReady, false);
    });

    it('unloading the unpinned serving version hands over to the next READY one', () => {
      const model = Model.discover('resnet', [version(1).ready().build(), version(2).ready().build()]);
      model.startUnloading(2, AT);
      assert.equal(model.versionToServe().version, 1, 'requests go to version 1 while 2 drains');
      assert.deepEqual(model.pullDomainEvents(), [{ type: 'DefaultVersionChanged', occurredAt: AT, modelName: 'resnet', from: 2, to: 1 }]);
    });

    it('unloading a version that does not serve records no default change', () => {
      const model = Model.discover('resnet', [version(1).ready().build(), version(2).ready().build()]);
      model.startUnloading(1, AT);
      model.finishUnloading(1, AT);
      assert.deepEqual(typesOf(model), ['ModelVersionUnloaded']);
    });

    it('forcing the unload of the pinned default unpins it', () => {
      const model = Model.discover('resnet', [version(1).ready().build(), version(2).ready().build()]);
      model.makeDefault(1, AT);
      model.startUnloading(1, AT, { force: true });
      assert.equal(model.defaultVersion, undefined);
      assert.equal(model.versionToServe().version, 2);
    });

    it('addVersion takes a new version of this model once', () => {
      const model = Model.discover('resnet', [version(1).ready().build()]);
      model.addVersion(version(2).build());
      assert.deepEqual(model.versions.map((v) => v.version), [2, 1]);
      assertDomainError(() => model.addVersion(version(2).build()), 'REGISTRY.INVALID_TRANSITION', 'already has version 2');
      assertDomainError(() => model.addVersion(aModelVersion().of('bert').numbered(3).build()), 'REGISTRY.INVALID_TRANSITION', "'bert'");
    });
  });
  it('unpinDefault returns to the highest READY version', () => {
    const at = new Date('2024-05-06T07:08:09.000Z');
    const model = Model.discover('resnet', [version(1).ready().build(), version(2).ready().build()]);
    model.makeDefault(1, at);
    model.pullDomainEvents();
    model.unpinDefault(at);
    assert.equal(model.defaultVersion, undefined);
    assert.equal(model.versionToServe().version, 2);
    assert.deepEqual(model.pullDomainEvents(), [{ type: 'DefaultVersionChanged', occurredAt: at, modelName: 'resnet', from: 1, to: 2 }]);
  });
});

describe('Model.unloadFailed: an operator unloads a version whose load failed', () => {
  it('makes it unloaded (no longer a failure) and records ModelVersionUnloaded', () => {
    const model = Model.discover('resnet', [version(1).ready().build(), version(2).failed('the file is corrupt').build()]);
    assert.equal(model.version(2).hasFailed, true);
    model.unloadFailed(2, LOADED_AT);
    assert.equal(model.version(2).state, 'UNAVAILABLE');
    assert.equal(model.version(2).reason, 'unloaded');
    assert.equal(model.version(2).isUnloaded, true);
    assert.equal(model.version(2).hasFailed, false);
    assert.deepEqual(model.pullDomainEvents(), [{ type: 'ModelVersionUnloaded', occurredAt: LOADED_AT, modelName: 'resnet', version: 2 }]);
    assert.equal(model.servingVersion()?.version, 1);
  });

  it('refuses a version that did not fail: READY, unloaded already, never loaded', () => {
    const model = Model.discover('resnet', [version(1).ready().build(), version(2).unloaded().build(), version(3).build()]);
    assertDomainError(() => model.unloadFailed(1, LOADED_AT), 'REGISTRY.INVALID_TRANSITION', 'READY');
    assertDomainError(() => model.unloadFailed(2, LOADED_AT), 'REGISTRY.INVALID_TRANSITION', 'unloaded already');
    assertDomainError(() => model.unloadFailed(3, LOADED_AT), 'REGISTRY.INVALID_TRANSITION', 'UNKNOWN');
  });
});

describe('Model: versions present and not loaded, and unloads checked before they happen', () => {
  const notLoaded = (number: number) => ModelVersion.notLoaded('resnet', number, `/repo/resnet/${number}/model.onnx`);

  it('lists a version not loaded as UNAVAILABLE, "unloaded"; inference does not find it until it loads', () => {
    const model = Model.discover('resnet', [version(1).ready().build(), notLoaded(2)]);
    const two = model.version(2);
    assert.deepEqual([two.state, two.reason, two.isUnloaded, two.neverLoaded], ['UNAVAILABLE', 'unloaded', true, true]);
    assert.equal(model.versionToServe().version, 1, 'it does not serve');
    assertDomainError(() => model.versionToServe(2), 'REGISTRY.VERSION_NOT_FOUND', "'resnet'", 'version 2', 'not loaded');
    model.startLoading(2);
    assert.equal(model.version(2).neverLoaded, false);
    model.finishLoading(2, { config: aModelConfig(), executionProvider: 'cpu', fileSha256: FILE_SHA256, loadedAt: LOADED_AT });
    assert.equal(model.versionToServe().version, 2);
  });

  it('requireUnloadable refuses what startUnloading would, and changes nothing', () => {
    const model = Model.discover('resnet', [version(1).ready().build(), version(2).ready().build(), version(3).failed('corrupt').build(), notLoaded(4)]);
    model.makeDefault(2, LOADED_AT);
    assertDomainError(() => model.requireUnloadable(2), 'REGISTRY.INVALID_TRANSITION', 'default version');
    assertDomainError(() => model.requireUnloadable(4), 'REGISTRY.INVALID_TRANSITION', 'unloaded already');
    assertDomainError(() => model.requireUnloadable(9), 'REGISTRY.VERSION_NOT_FOUND');
    model.requireUnloadable(2, { force: true });
    model.requireUnloadable(1);
    model.requireUnloadable(3);
    assert.equal(model.servingVersion()?.version, 2);
    assert.deepEqual(model.versions.map((v) => v.state), ['UNAVAILABLE', 'UNAVAILABLE', 'READY', 'READY']);
  });

  describe("the operator's intents (saved with the model)", () => {
    it('come with the model as discovered (sorted, without duplicates), none by default', () => {
      assert.deepEqual(Model.discover('resnet', []).intents, { unloadedVersions: [], explicitVersions: [] });
      const model = Model.discover('resnet', [], '', { configOverride: '{}', unloadedVersions: [3, 1, 3], explicitVersions: [2] });
      assert.deepEqual(model.intents, { configOverride: '{}', unloadedVersions: [1, 3], explicitVersions: [2] });
      assert.equal(model.configOverride, '{}');
    });

    it('a version loaded by itself is kept loaded and no longer unloaded on purpose; an unloaded one the reverse', () => {
      const model = Model.discover('resnet', [], '', { unloadedVersions: [2], explicitVersions: [] });
      model.keepLoaded(2);
      assert.deepEqual(model.intents, { unloadedVersions: [], explicitVersions: [2] });
      model.keepUnloaded(2);
      assert.deepEqual(model.intents, { unloadedVersions: [2], explicitVersions: [] });
    });

    it('a change not saved is undone: the intents are as before', () => {
      const model = Model.discover('resnet', [], '', { configOverride: 'old', unloadedVersions: [1], explicitVersions: [] });
      const before = model.changeIntents({ configOverride: undefined, unloadedVersions: [] });
      assert.deepEqual(model.intents, { unloadedVersions: [], explicitVersions: [] }, 'an override given as undefined is dropped');
      model.restoreIntents(before);
      assert.deepEqual(model.intents, { configOverride: 'old', unloadedVersions: [1], explicitVersions: [] });
    });
  });
});
