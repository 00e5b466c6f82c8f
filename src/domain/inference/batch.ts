import { TYPED_ARRAY_OF, type TensorData } from '../shared/datatype.js';
import { DomainError } from '../shared/domain-error.js';
import type { Tensor } from './tensor.js';

/**
 * Requests can share a run only when they agree on everything but the batch dimension: the same
 * inputs with the same datatypes and the same shapes past axis 0, and the same requested outputs.
 * This string says so in one comparison.
 */
export function batchCompatibilityKey(inputs: readonly Tensor[], outputNames: readonly string[]): string {
  const parts = inputs.map((t) => `${t.name}:${t.datatype}:${t.shape.slice(1).join('x')}`);
  if (parts.length > 1) parts.sort();
  return `${parts.join('|')}>${outputNames.join(',')}`;
}

/** The rows a request adds to a batch: its batch dimension (every input agrees on it, checked earlier). */
export function batchRows(inputs: readonly Tensor[]): number {
  return inputs[0]?.shape[0] ?? 1;
}

/** Concatenates each input of the members along axis 0, in the input order of the first member. */
export function mergeInputs(members: readonly (readonly Tensor[])[]): Tensor[] {
  if (members.length === 1) return [...members[0]];
  return members[0].map((first) => {
    const parts = members.map((inputs) => inputs.find((t) => t.name === first.name)!);
    const rows = parts.reduce((sum, t) => sum + t.shape[0], 0);
    return { name: first.name, datatype: first.datatype, shape: [rows, ...first.shape.slice(1)], data: concatenate(parts.map((t) => t.data)) };
  });
}

function concatenate(parts: readonly TensorData[]): TensorData {
  if (Array.isArray(parts[0])) return (parts as string[][]).flat();
  const length = parts.reduce((sum, data) => sum + data.length, 0);
  const first = parts[0] as Exclude<TensorData, string[]>;
  const out = new (first.constructor as (typeof TYPED_ARRAY_OF)[keyof typeof TYPED_ARRAY_OF])(length);
  let offset = 0;
  for (const data of parts as Exclude<TensorData, string[]>[]) {
    (out as Float64Array).set(data as Float64Array, offset);
    offset += data.length;
  }
  return out as TensorData;
}

/**
 * Cuts each output of a batched run back into the members' rows, in member order. Every output
 * must have one row per batched row; a model whose output is not batch-major cannot be batched.
 */
export function splitOutputs(outputs: readonly Tensor[], rowsPerMember: readonly number[]): Tensor[][] {
  if (rowsPerMember.length === 1) return [[...outputs]];
  const totalRows = rowsPerMember.reduce((sum, rows) => sum + rows, 0);
  for (const output of outputs) {
    if (output.shape[0] !== totalRows) {
      throw new DomainError(
        'INFERENCE.RUNTIME_ERROR',
        `output '${output.name}' has ${output.shape[0] ?? 'no'} rows for a batch of ${totalRows}: the model's outputs are not batch-major, so it cannot be batched (set max_batch_size to 0)`,
      );
    }
  }
  const split: Tensor[][] = rowsPerMember.map(() => []);
  for (const output of outputs) {
    const rowLength = totalRows === 0 ? 0 : output.data.length / totalRows;
    let row = 0;
    rowsPerMember.forEach((rows, member) => {
      const start = row * rowLength;
      const end = (row + rows) * rowLength;
      const data = Array.isArray(output.data) ? output.data.slice(start, end) : output.data.subarray(start, end);
      split[member].push({ name: output.name, datatype: output.datatype, shape: [rows, ...output.shape.slice(1)], data: data as TensorData });
      row += rows;
    });
  }
  return split;
}
