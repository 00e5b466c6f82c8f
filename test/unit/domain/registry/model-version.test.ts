import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ModelVersion, type ModelVersionState } from '../../../../src/domain/registry/model-version.js';
import { ModelVersionId } from '../../../../src/domain/shared/model-version-id.js';
import { assertDomainError } from '../../support/domain-error.assertions.js';
import { FILE_SHA256, LOADED_AT, aModelConfig, aModelVersion } from '../../support/model-version.mother.js';

describe('ModelVersion', () => {
  describe('register', () => {
    it('starts UNKNOWN, with no reason, config or provider', () => {
      const version = ModelVersion.register('resnet', 3, '/models/resnet/3/model.onnx');
      assert.equal(version.state, 'UNKNOWN');
      assert.equal(version.reason, '');
      assert.equal(version.config, undefined);
      assert.equal(version.executionProvider, undefined);
      assert.equal(version.isReady, false);
      assert.equal(version.path, '/models/resnet/3/model.onnx');
      assert.equal(version.key.toString(), 'resnet/3');
      assert.equal(version.nextKey.toString(), 'resnet/3#2', 'a reload loads beside it under the next generation');
      assert.ok(version.id.equals(ModelVersionId.of('resnet', 3)));
    });

    for (const bad of [0, -1, 1.5, Number.NaN]) {
      it(`refuses version ${bad}`, () => {
        assertDomainError(() => ModelVersion.register('resnet', bad, '/x'), 'REGISTRY.INVALID_TRANSITION', `version ${bad}`, "'resnet'", 'positive integer');
      });
    }
  });

  describe('its life', () => {
    it('loads: UNKNOWN -> LOADING', () => {
      assert.equal(aModelVersion().loading().build().state, 'LOADING');
    });

    it('becomes READY with its config, execution provider and load time', () => {
      const config = aModelConfig({ maxBatchSize: 4 });
      const version = aModelVersion().ready(config, 'cuda').build();
      assert.equal(version.state, 'READY');
      assert.equal(version.isReady, true);
      assert.equal(version.config, config);
      assert.equal(version.executionProvider, 'cuda');
      assert.deepEqual(version.loadedAt, LOADED_AT);
    });

    it('fails while loading and keeps the reason', () => {
      const version = aModelVersion().failed('input 0 has an unsupported type').build();
      assert.equal(version.state, 'UNAVAILABLE');
      assert.equal(version.reason, 'input 0 has an unsupported type');
      assert.equal(version.isReady, false);
    });

    it('can fail before loading starts (e.g. an invalid config)', () => {
      const version = aModelVersion().build();
      version.markFailed('config.json: max_batch_size: expected number');
      assert.equal(version.state, 'UNAVAILABLE');
      assert.equal(version.reason, 'config.json: max_batch_size: expected number');
    });

    it('unloads: READY -> UNLOADING -> UNAVAILABLE, dropping its config and provider', () => {
      const version = aModelVersion().ready().build();
      version.beginUnload();
      assert.equal(version.state, 'UNLOADING');
      assert.equal(version.isReady, false);
      version.markUnloaded();
      assert.equal(version.state, 'UNAVAILABLE');
      assert.equal(version.reason, 'unloaded');
      assert.equal(version.config, undefined);
      assert.equal(version.executionProvider, undefined);
    });

    it('can be loaded again after failing, which clears the reason', () => {
      const version = aModelVersion().failed('out of memory').build();
      version.markLoading();
      assert.equal(version.state, 'LOADING');
      assert.equal(version.reason, '');
    });

    it('can be loaded again after being unloaded', () => {
      const version = aModelVersion().unloaded().build();
      version.markLoading();
      version.markReady({ config: aModelConfig(), executionProvider: 'cpu', fileSha256: FILE_SHA256, loadedAt: LOADED_AT });
      assert.equal(version.state, 'READY');
    });
  });

  describe('illegal transitions', () => {
    type Transition = 'markLoading' | 'markReady' | 'markFailed' | 'beginUnload' | 'markUnloaded';
    const perform: Record<Transition, (version: ModelVersion) => void> = {
      markLoading: (v) => v.markLoading(),
      markReady: (v) => v.markReady({ config: aModelConfig(), executionProvider: 'cpu', fileSha256: FILE_SHA256, loadedAt: LOADED_AT }),
      markFailed: (v) => v.markFailed('boom'),
      beginUnload: (v) => v.beginUnload(),
      markUnloaded: (v) => v.markUnloaded(),
    };
    /** The documented life: UNKNOWN -> LOADING -> READY | UNAVAILABLE -> UNLOADING -> UNAVAILABLE, and reloads. */
    const legalFrom: Record<Transition, readonly ModelVersionState[]> = {
      markLoading: ['UNKNOWN', 'UNAVAILABLE'],
      markReady: ['LOADING'],
      markFailed: ['UNKNOWN', 'LOADING'],
      beginUnload: ['READY'],
      markUnloaded: ['UNLOADING'],
    };
    const versionIn: Record<ModelVersionState, () => ModelVersion> = {
      UNKNOWN: () => aModelVersion().build(),
      LOADING: () => aModelVersion().loading().build(),
      READY: () => aModelVersion().ready().build(),
      UNLOADING: () => aModelVersion().unloading().build(),
      UNAVAILABLE: () => aModelVersion().failed('the file is corrupt').build(),
    };

    for (const transition of Object.keys(perform) as Transition[]) {
      for (const state of Object.keys(versionIn) as ModelVersionState[]) {
        if (legalFrom[transition].includes(state)) continue;
        it(`${transition} is refused while ${state}, which stays ${state}`, () => {
          const version = versionIn[state]();
          assertDomainError(() => perform[transition](version), 'REGISTRY.INVALID_TRANSITION', "version 1 of 'resnet'", `while ${state}`);
          assert.equal(version.state, state);
        });
      }
    }

    it('a refused transition keeps the failure reason', () => {
      const version = aModelVersion().failed('the file is corrupt').build();
      assert.throws(() => version.beginUnload());
      assert.equal(version.reason, 'the file is corrupt');
    });
  });
});
