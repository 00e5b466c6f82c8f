import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkClassifications,
  classificationCount,
  classifyOutputs,
  formatFloat,
  MAX_CLASSIFIED_ELEMENTS,
  topKClassifications,
} from '../../../../src/domain/inference/classification.js';
import type { Tensor } from '../../../../src/domain/inference/tensor.js';
import { assertDomainError } from '../../support/domain-error.assertions.js';

const fp32 = (shape: number[], values: number[]): Tensor => ({ name: 'scores', datatype: 'FP32', shape, data: Float32Array.from(values) });

describe('classification (top-k)', () => {
  it("ranks the highest values first, as in Triton's example, values written as C's %f", () => {
    const classes = topKClassifications(fp32([4], [1.1, 3.3, 0.5, 2.4]), 2, false);
    assert.deepEqual(classes, { name: 'scores', datatype: 'BYTES', shape: [2], data: ['3.300000:1', '2.400000:3'] });
  });

  it('classifies each row of a batch on its own: shape [batch, k]', () => {
    const classes = topKClassifications(fp32([2, 4], [1, 5, 10, 4, /* row 2 */ 9, 8, 7, 6]), 2, true);
    assert.deepEqual(classes.shape, [2, 2]);
    assert.deepEqual(classes.data, ['10.000000:2', '5.000000:1', '9.000000:0', '8.000000:1']);
  });

  it('ranks the whole tensor as one row when the model does not batch', () => {
    const classes = topKClassifications(fp32([2, 2], [1, 5, 10, 4]), 3, false);
    assert.deepEqual([classes.shape, classes.data], [[3], ['10.000000:2', '5.000000:1', '4.000000:3']]);
  });

  it('answers at most the elements of a row when k is larger', () => {
    const classes = topKClassifications(fp32([1, 3], [0.2, 0.7, 0.1]), 10, true);
    assert.deepEqual([classes.shape, classes.data], [[1, 3], ['0.700000:1', '0.200000:0', '0.100000:2']]);
    const empty = topKClassifications(fp32([2, 0], []), 3, true);
    assert.deepEqual([empty.shape, empty.data], [[2, 0], []]);
  });

  it('appends the label of each class; an empty or missing label adds nothing', () => {
    const classes = topKClassifications(fp32([1, 4], [0.1, 0.4, 0.3, 0.2]), 4, true, ['cat', 'dog', '']);
    assert.deepEqual(classes.data, ['0.400000:1:dog', '0.300000:2', '0.200000:3', '0.100000:0:cat']);
  });

  it('keeps index order among equal values and ranks NaN below every number', () => {
    const classes = topKClassifications(fp32([6], [NaN, 2, -Infinity, 2, NaN, 3]), 6, false);
    assert.deepEqual(classes.data, ['3.000000:5', '2.000000:1', '2.000000:3', '-inf:2', 'nan:0', 'nan:4']);
  });

  it('ranks integer outputs by their own type, 64-bit included, written as integers', () => {
    const int64: Tensor = { name: 'ids', datatype: 'INT64', shape: [3], data: BigInt64Array.of(-(2n ** 63n), 2n ** 63n - 1n, 0n) };
    assert.deepEqual(topKClassifications(int64, 2, false).data, ['9223372036854775807:1', '0:2']);
    const uint8: Tensor = { name: 'u', datatype: 'UINT8', shape: [1, 3], data: Uint8Array.of(7, 255, 0) };
    assert.deepEqual(topKClassifications(uint8, 1, true).data, ['255:1']);
    const uint64: Tensor = { name: 'u', datatype: 'UINT64', shape: [2], data: BigUint64Array.of(2n ** 64n - 1n, 1n) };
    assert.deepEqual(topKClassifications(uint64, 2, false).data, ['18446744073709551615:0', '1:1']);
  });

  it('selects the same classes as a full sort, for any k', () => {
    let seed = 42;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    // Few distinct values: many ties, which must keep index order.
    const values = Array.from({ length: 500 }, () => Math.floor(random() * 50));
    const sorted = values.map((value, index) => ({ value, index })).sort((a, b) => b.value - a.value || a.index - b.index);
    for (const k of [1, 2, 5, 37, 499, 500]) {
      const expected = sorted.slice(0, k).map(({ value, index }) => `${value}.000000:${index}`);
      assert.deepEqual(topKClassifications(fp32([500], values), k, false).data, expected, `k = ${k}`);
    }
  });

  it('refuses a row of more than a million elements (Triton bounds it too), naming the output', () => {
    const big: Tensor = { name: 'huge', datatype: 'UINT8', shape: [1, MAX_CLASSIFIED_ELEMENTS + 1], data: new Uint8Array(MAX_CLASSIFIED_ELEMENTS + 1) };
    assertDomainError(() => topKClassifications(big, 1, true), 'INFERENCE.INVALID_OUTPUT', "output 'huge'", 'at most 1000000 elements per row');
    const fits: Tensor = { ...big, shape: [1, MAX_CLASSIFIED_ELEMENTS], data: new Uint8Array(MAX_CLASSIFIED_ELEMENTS) };
    assert.deepEqual(topKClassifications(fits, 1, true).data, ['0:0']);
  });

  it('replaces only the outputs asked for, with their own labels', () => {
    const label: Tensor = { name: 'label', datatype: 'INT64', shape: [1], data: BigInt64Array.of(1n) };
    const outputs = classifyOutputs([fp32([1, 2], [0.25, 0.75]), label], new Map([['scores', 1]]), true, (name) => (name === 'scores' ? ['no', 'yes'] : undefined));
    assert.deepEqual(outputs[0]!.data, ['0.750000:1:yes']);
    assert.equal(outputs[1], label);
  });
});

describe('the classification parameter and the outputs it may name', () => {
  it('takes a positive integer', () => {
    assert.equal(classificationCount('out', 3), 3);
    assert.equal(classificationCount('out', Number.MAX_SAFE_INTEGER), Number.MAX_SAFE_INTEGER);
  });

  for (const value of [0, -1, 2.5, '3', true, Number.MAX_SAFE_INTEGER + 1]) {
    it(`refuses ${JSON.stringify(value)}, naming the output`, () => {
      assertDomainError(() => classificationCount('out', value), 'INFERENCE.INVALID_OUTPUT', "output 'out'", "parameter 'classification'", 'positive integer');
    });
  }

  it('refuses outputs that are not numbers Triton ranks: BYTES, BOOL, FP16', () => {
    const signature = {
      inputs: [],
      outputs: (['BYTES', 'BOOL', 'FP16', 'FP32', 'INT8'] as const).map((datatype) => ({ name: datatype.toLowerCase(), datatype, shape: [-1, 3] })),
    };
    for (const name of ['bytes', 'bool', 'fp16']) {
      assertDomainError(() => checkClassifications(new Map([[name, 1]]), signature), 'INFERENCE.INVALID_OUTPUT', `output '${name}' is ${name.toUpperCase()}`, 'numeric');
    }
    checkClassifications(new Map([['fp32', 1], ['int8', 2]]), signature);
    checkClassifications(undefined, signature);
  });
});

describe("formatFloat: C's printf(\"%f\")", () => {
  const cases: [number, string][] = [
    [0, '0.000000'],
    [-0, '-0.000000'],
    [3.5, '3.500000'],
    [Math.fround(0.1), '0.100000'],
    [Math.fround(3.3), '3.300000'],
    [-2.25, '-2.250000'],
    [0.0078125, '0.007812'], // exactly halfway: to even, as glibc does
    [0.0234375, '0.023438'],
    [0.9999996, '1.000000'],
    [5e-7, '0.000000'], // just below halfway in binary
    [1e21, '1000000000000000000000.000000'],
    [Number.MAX_VALUE, `${(2n ** 1024n - 2n ** 971n).toString()}.000000`],
    [Number.MIN_VALUE, '0.000000'],
    [NaN, 'nan'],
    [Infinity, 'inf'],
    [-Infinity, '-inf'],
  ];
  for (const [value, expected] of cases) {
    it(`${value} → ${expected.length > 40 ? `${expected.slice(0, 20)}…` : expected}`, () => assert.equal(formatFloat(value), expected));
  }
});
