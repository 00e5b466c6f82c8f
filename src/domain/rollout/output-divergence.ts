import type { Tensor } from '../inference/tensor.js';

/**
 * How far a shadow's outputs are from the answer the client got: the largest absolute difference
 * between corresponding elements of the outputs both have (BYTES, BOOL and FP16 elements count 0
 * when equal and 1 when not; a NaN on one side only counts as infinitely far). Undefined when the
 * two answers cannot be compared: an output missing, or another datatype or shape.
 */
export function outputDivergence(expected: readonly Tensor[], actual: readonly Tensor[]): number | undefined {
  let divergence = 0;
  for (const want of expected) {
    const got = actual.find((tensor) => tensor.name === want.name);
    if (!got || got.datatype !== want.datatype || got.shape.join() !== want.shape.join()) return undefined;
    const exact = want.datatype === 'BYTES' || want.datatype === 'BOOL' || want.datatype === 'FP16';
    for (let i = 0; i < want.data.length; i++) {
      const a = want.data[i];
      const b = got.data[i];
      divergence = Math.max(divergence, exact ? (a === b ? 0 : 1) : distance(a as number | bigint, b as number | bigint));
    }
  }
  return divergence;
}

function distance(a: number | bigint, b: number | bigint): number {
  if (typeof a === 'bigint' || typeof b === 'bigint') return Math.abs(Number(BigInt(a) - BigInt(b)));
  if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) && Number.isNaN(b) ? 0 : Infinity;
  if (a === b) return 0; // equal infinities
  return Math.abs(a - b);
}
