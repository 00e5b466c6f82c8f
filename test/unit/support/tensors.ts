import type { Datatype, TensorData } from '../../../src/domain/shared/datatype.js';
import { TYPED_ARRAY_OF } from '../../../src/domain/shared/datatype.js';
import type { Tensor, TensorSpec } from '../../../src/domain/inference/tensor.js';

export function spec(name: string, datatype: Datatype, shape: readonly number[]): TensorSpec {
  return { name, datatype, shape };
}

/** A tensor of zeros (or empty strings) whose element count is `elements`, by default what `shape` holds. */
export function aTensor(name: string, datatype: Datatype, shape: readonly number[], elements = product(shape)): Tensor {
  const data: TensorData = datatype === 'BYTES' ? new Array<string>(elements).fill('') : new TYPED_ARRAY_OF[datatype](elements);
  return { name, datatype, shape, data };
}

function product(shape: readonly number[]): number {
  return shape.reduce((count, dim) => count * dim, 1);
}
