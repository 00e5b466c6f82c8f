import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { batchCompatibilityKey, batchRows, mergeInputs, splitOutputs } from '../../../../src/domain/inference/batch.js';
import type { Tensor } from '../../../../src/domain/inference/tensor.js';
import { assertDomainError } from '../../support/domain-error.assertions.js';
import { aTensor } from '../../support/tensors.js';

const fp32 = (name: string, shape: number[], values: number[]): Tensor => ({ name, datatype: 'FP32', shape, data: Float32Array.from(values) });

describe('batchCompatibilityKey', () => {
  const key = (inputs: Tensor[], outputs: string[] = ['y']) => batchCompatibilityKey(inputs, outputs);

  it('is the same for requests that differ only in their batch dimension', () => {
    assert.equal(key([aTensor('x', 'FP32', [1, 3, 2])]), key([aTensor('x', 'FP32', [5, 3, 2])]));
  });

  it('does not depend on the order the inputs are given in', () => {
    const a = aTensor('a', 'INT64', [1, 4]);
    const b = aTensor('b', 'BOOL', [1]);
    assert.equal(key([a, b]), key([b, a]));
  });

  it('differs when a shape past the batch axis, a datatype, an input name or the rank differs', () => {
    const base = key([aTensor('x', 'FP32', [1, 3, 2])]);
    assert.notEqual(key([aTensor('x', 'FP32', [1, 2, 3])]), base);
    assert.notEqual(key([aTensor('x', 'FP16', [1, 3, 2])]), base);
    assert.notEqual(key([aTensor('z', 'FP32', [1, 3, 2])]), base);
    assert.notEqual(key([aTensor('x', 'FP32', [1, 6])]), base);
    assert.notEqual(key([aTensor('x', 'FP32', [1, 32])]), key([aTensor('x', 'FP32', [1, 3, 2])]));
  });

  it('differs when the requested outputs or their order differ', () => {
    const x = [aTensor('x', 'FP32', [1, 2])];
    assert.notEqual(key(x, ['y']), key(x, ['y', 'z']));
    assert.notEqual(key(x, ['y', 'z']), key(x, ['z', 'y']));
  });
});

describe('batchRows', () => {
  it('is the first dimension of the first input', () => {
    assert.equal(batchRows([aTensor('x', 'FP32', [3, 2]), aTensor('z', 'FP32', [3])]), 3);
  });

  it('is 1 for a request without inputs', () => {
    assert.equal(batchRows([]), 1);
  });
});

describe('mergeInputs', () => {
  it('returns the inputs of a single member as they are', () => {
    const inputs = [fp32('x', [1, 2], [1, 2])];
    const merged = mergeInputs([inputs]);
    assert.deepEqual(merged, inputs);
    assert.equal(merged[0], inputs[0]);
  });

  it('concatenates each input along axis 0, in member order', () => {
    const merged = mergeInputs([[fp32('x', [1, 2], [1, 2])], [fp32('x', [2, 2], [3, 4, 5, 6])], [fp32('x', [1, 2], [7, 8])]]);
    assert.deepEqual(merged, [fp32('x', [4, 2], [1, 2, 3, 4, 5, 6, 7, 8])]);
  });

  it("keeps the first member's input order when others list their inputs differently", () => {
    const merged = mergeInputs([
      [fp32('a', [1], [1]), fp32('b', [1], [10])],
      [fp32('b', [1], [20]), fp32('a', [1], [2])],
    ]);
    assert.deepEqual(merged, [fp32('a', [2], [1, 2]), fp32('b', [2], [10, 20])]);
  });

  it('keeps the element type of every datatype: BYTES, INT64, UINT64, BOOL, FP16, FP64', () => {
    const pair = (datatype: Tensor['datatype'], first: Tensor['data'], second: Tensor['data']) =>
      mergeInputs([[{ name: 't', datatype, shape: [1], data: first }], [{ name: 't', datatype, shape: [1], data: second }]])[0];

    assert.deepEqual(pair('BYTES', ['a'], ['b']), { name: 't', datatype: 'BYTES', shape: [2], data: ['a', 'b'] });
    assert.deepEqual(pair('INT64', BigInt64Array.of(-1n), BigInt64Array.of(2n ** 62n)).data, BigInt64Array.of(-1n, 2n ** 62n));
    assert.deepEqual(pair('UINT64', BigUint64Array.of(1n), BigUint64Array.of(2n ** 64n - 1n)).data, BigUint64Array.of(1n, 2n ** 64n - 1n));
    assert.deepEqual(pair('BOOL', Uint8Array.of(1), Uint8Array.of(0)).data, Uint8Array.of(1, 0));
    assert.deepEqual(pair('FP16', Uint16Array.of(0x3c00), Uint16Array.of(0xc000)).data, Uint16Array.of(0x3c00, 0xc000));
    assert.deepEqual(pair('FP64', Float64Array.of(0.1), Float64Array.of(1e300)).data, Float64Array.of(0.1, 1e300));
  });

  it('copies the members’ data rather than sharing it', () => {
    const first = fp32('x', [1], [1]);
    const merged = mergeInputs([[first], [fp32('x', [1], [2])]]);
    (merged[0].data as Float32Array)[0] = 99;
    assert.deepEqual(first.data, Float32Array.of(1));
  });
});

describe('splitOutputs', () => {
  it('cuts each output into the rows of each member, in member order', () => {
    const split = splitOutputs([fp32('y', [4, 2], [1, 2, 3, 4, 5, 6, 7, 8]), fp32('z', [4], [10, 20, 30, 40])], [1, 2, 1]);
    assert.deepEqual(split, [
      [fp32('y', [1, 2], [1, 2]), fp32('z', [1], [10])],
      [fp32('y', [2, 2], [3, 4, 5, 6]), fp32('z', [2], [20, 30])],
      [fp32('y', [1, 2], [7, 8]), fp32('z', [1], [40])],
    ]);
  });

  it('cuts BYTES, INT64 and BOOL outputs row-exactly', () => {
    const split = splitOutputs(
      [
        { name: 's', datatype: 'BYTES', shape: [3, 2], data: ['a', 'b', 'c', 'd', 'e', 'f'] },
        { name: 'n', datatype: 'INT64', shape: [3], data: BigInt64Array.of(1n, 2n, 3n) },
        { name: 'b', datatype: 'BOOL', shape: [3], data: Uint8Array.of(1, 0, 1) },
      ],
      [2, 1],
    );
    assert.deepEqual(split[0], [
      { name: 's', datatype: 'BYTES', shape: [2, 2], data: ['a', 'b', 'c', 'd'] },
      { name: 'n', datatype: 'INT64', shape: [2], data: BigInt64Array.of(1n, 2n) },
      { name: 'b', datatype: 'BOOL', shape: [2], data: Uint8Array.of(1, 0) },
    ]);
    assert.deepEqual(split[1], [
      { name: 's', datatype: 'BYTES', shape: [1, 2], data: ['e', 'f'] },
      { name: 'n', datatype: 'INT64', shape: [1], data: BigInt64Array.of(3n) },
      { name: 'b', datatype: 'BOOL', shape: [1], data: Uint8Array.of(1) },
    ]);
  });

  it('gives a single member the outputs as the runtime returned them, batch-major or not', () => {
    const scalar: Tensor = { name: 'total', datatype: 'FP32', shape: [], data: Float32Array.of(42) };
    assert.deepEqual(splitOutputs([scalar], [3]), [[scalar]]);
  });

  it('refuses an output whose first dimension is not the batch, naming it: the model cannot be batched', () => {
    assertDomainError(
      () => splitOutputs([fp32('y', [2, 2], [1, 2, 3, 4]), fp32('pooled', [1, 4], [1, 2, 3, 4])], [1, 1]),
      'INFERENCE.RUNTIME_ERROR',
      "output 'pooled' has 1 rows for a batch of 2",
      'not batch-major',
      'max_batch_size to 0',
    );
  });

  it('refuses a scalar output of a batch', () => {
    assertDomainError(() => splitOutputs([{ name: 'total', datatype: 'FP32', shape: [], data: Float32Array.of(1) }], [1, 1]), 'INFERENCE.RUNTIME_ERROR', "output 'total' has no rows");
  });
});
