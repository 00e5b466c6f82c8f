import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatShape, shapeElementCount } from '../../../../src/domain/inference/tensor.js';

describe('shapeElementCount', () => {
  it('multiplies the dimensions', () => {
    assert.equal(shapeElementCount([2, 3, 4]), 24);
  });

  it('counts one element for a scalar (empty shape)', () => {
    assert.equal(shapeElementCount([]), 1);
  });

  it('counts zero elements when a dimension is zero', () => {
    assert.equal(shapeElementCount([4, 0, 7]), 0);
  });

  it('accepts a product up to the largest safe integer', () => {
    assert.equal(shapeElementCount([2 ** 26, 2 ** 26]), 2 ** 52);
  });

  it('is undefined when the product is not a safe integer', () => {
    assert.equal(shapeElementCount([2 ** 40, 2 ** 40]), undefined);
    assert.equal(shapeElementCount([2 ** 27, 2 ** 27]), undefined);
  });
});

describe('formatShape', () => {
  it('writes the dimensions as a compact list', () => {
    assert.equal(formatShape([-1, 3, 224]), '[-1,3,224]');
    assert.equal(formatShape([]), '[]');
  });
});
