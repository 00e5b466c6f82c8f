import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Model } from '../../../../src/domain/registry/model.js';
import { assertDomainError } from '../../support/domain-error.assertions.js';
import { aModelVersion } from '../../support/model-version.mother.js';

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
});
