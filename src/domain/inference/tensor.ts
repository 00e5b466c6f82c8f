import type { Datatype, TensorData } from '../shared/datatype.js';

/** A named tensor: the unit every request and response carries. `data` is row-major and flat. */
export interface Tensor {
  readonly name: string;
  readonly datatype: Datatype;
  readonly shape: readonly number[];
  readonly data: TensorData;
}

/** What a model declares for one of its inputs or outputs; `-1` marks a dimension of any size. */
export interface TensorSpec {
  readonly name: string;
  readonly datatype: Datatype;
  readonly shape: readonly number[];
}

/** The inputs and outputs a served model version exposes (batch dimension included, as `-1`). */
export interface ModelSignature {
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
}

/** The element count of a shape, or `undefined` when the product is not a safe integer. */
export function shapeElementCount(shape: readonly number[]): number | undefined {
  let count = 1;
  for (const dim of shape) {
    count *= dim;
    if (!Number.isSafeInteger(count)) return undefined;
  }
  return count;
}

export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}
