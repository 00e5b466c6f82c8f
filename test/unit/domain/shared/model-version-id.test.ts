import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ModelVersionId, RuntimeKey } from '../../../../src/domain/shared/model-version-id.js';

describe('ModelVersionId', () => {
  it("is Triton's <model>/<version>, equal by value", () => {
    const id = ModelVersionId.of('resnet', 3);
    assert.equal(id.toString(), 'resnet/3');
    assert.equal(JSON.stringify({ id }), '{"id":"resnet/3"}');
    assert.ok(id.equals(ModelVersionId.of('resnet', 3)));
    assert.ok(!id.equals(ModelVersionId.of('resnet', 30)));
    assert.ok(!ModelVersionId.of('a/b', 1).equals(ModelVersionId.of('a', 1)));
  });
});

describe('RuntimeKey', () => {
  const id = ModelVersionId.of('resnet', 3);

  it('a load, a reload and an upload check of one version have keys of their own, all of that version', () => {
    const keys = [RuntimeKey.of(id), RuntimeKey.reload(id, 2), RuntimeKey.reload(id, 3), RuntimeKey.uploadCheck(id)];
    assert.deepEqual(keys.map(String), ['resnet/3', 'resnet/3#2', 'resnet/3#3', 'resnet/3#upload']);
    assert.deepEqual(keys.map((key) => key.generation), [1, 2, 3, undefined]);
    assert.ok(keys.every((key) => key.isOf(id) && key.modelName === 'resnet' && key.version === 3));
    assert.ok(!keys.some((key) => key.isOf(ModelVersionId.of('resnet', 30))), 'not a prefix match: version 30 is another version');
  });

  it('equal by value; written as its text in JSON (what the health report shows)', () => {
    assert.ok(RuntimeKey.reload(id, 2).equals(RuntimeKey.reload(ModelVersionId.of('resnet', 3), 2)));
    assert.ok(!RuntimeKey.of(id).equals(RuntimeKey.reload(id, 2)));
    assert.equal(JSON.stringify([RuntimeKey.reload(id, 2)]), '["resnet/3#2"]');
  });

  it('a reload is generation 2 or more', () => {
    for (const bad of [1, 0, 2.5]) assert.throws(() => RuntimeKey.reload(id, bad), RangeError);
  });
});
