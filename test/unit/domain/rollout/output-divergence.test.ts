import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { outputDivergence } from '../../../../src/domain/rollout/output-divergence.js';
import type { Tensor } from '../../../../src/domain/inference/tensor.js';

const fp32 = (name: string, values: number[], shape = [values.length]): Tensor => ({ name, datatype: 'FP32', shape, data: Float32Array.from(values) });
const fp64 = (name: string, values: number[]): Tensor => ({ name, datatype: 'FP64', shape: [values.length], data: Float64Array.from(values) });
const int64 = (name: string, values: bigint[]): Tensor => ({ name, datatype: 'INT64', shape: [values.length], data: BigInt64Array.from(values) });
const bytes = (name: string, values: string[]): Tensor => ({ name, datatype: 'BYTES', shape: [values.length], data: values });
const bool = (name: string, values: number[]): Tensor => ({ name, datatype: 'BOOL', shape: [values.length], data: Uint8Array.from(values) });
const fp16 = (name: string, bits: number[]): Tensor => ({ name, datatype: 'FP16', shape: [bits.length], data: Uint16Array.from(bits) });

describe('outputDivergence', () => {
  it('is 0 for identical answers', () => {
    const answer = [fp32('probabilities', [0.1, 0.7, 0.2], [1, 3]), int64('label', [1n])];
    assert.equal(outputDivergence(answer, answer.map((t) => ({ ...t }))), 0);
  });

  it('is the largest absolute difference over every output', () => {
    const expected = [fp64('a', [0.1, 0.7, 0.2]), fp64('b', [1, 2])];
    assert.equal(outputDivergence(expected, [fp64('a', [0.1, 0.6, 0.25]), fp64('b', [1, 2])]), 0.7 - 0.6);
    assert.equal(outputDivergence(expected, [fp64('a', [0.1, 0.7, 0.2]), fp64('b', [1, -1.5])]), 3.5);
  });

  it('subtracts INT64 elements exactly', () => {
    assert.equal(outputDivergence([int64('label', [2n, 9_007_199_254_740_993n])], [int64('label', [0n, 9_007_199_254_740_992n])]), 2);
  });

  it('counts a differing BYTES, BOOL or FP16 element as 1, an equal one as 0', () => {
    assert.equal(outputDivergence([bytes('s', ['cat', 'dog'])], [bytes('s', ['cat', 'dog'])]), 0);
    assert.equal(outputDivergence([bytes('s', ['cat', 'dog'])], [bytes('s', ['cat', 'cow'])]), 1);
    assert.equal(outputDivergence([bool('b', [1, 0])], [bool('b', [1, 1])]), 1);
    assert.equal(outputDivergence([fp16('h', [0x3c00])], [fp16('h', [0x3c01])]), 1, 'FP16 bits compared, not their value');
    assert.equal(outputDivergence([fp16('h', [0x3c00])], [fp16('h', [0x3c00])]), 0);
  });

  it('treats NaN on one side only as infinitely far, NaN on both and equal infinities as equal', () => {
    assert.equal(outputDivergence([fp32('x', [NaN])], [fp32('x', [1])]), Infinity);
    assert.equal(outputDivergence([fp32('x', [1])], [fp32('x', [NaN])]), Infinity);
    assert.equal(outputDivergence([fp32('x', [NaN, Infinity, -Infinity])], [fp32('x', [NaN, Infinity, -Infinity])]), 0);
    assert.equal(outputDivergence([fp32('x', [Infinity])], [fp32('x', [-Infinity])]), Infinity);
  });

  it('ignores outputs only the shadow has', () => {
    assert.equal(outputDivergence([fp32('a', [1])], [fp32('extra', [100]), fp32('a', [1])]), 0);
  });

  it('cannot compare answers whose output is missing, of another datatype or of another shape', () => {
    assert.equal(outputDivergence([fp32('a', [1]), fp32('b', [2])], [fp32('a', [1])]), undefined);
    assert.equal(outputDivergence([fp32('a', [1])], [fp64('a', [1])]), undefined);
    assert.equal(outputDivergence([fp32('a', [1, 2], [1, 2])], [fp32('a', [1, 2], [2, 1])]), undefined);
  });
});
