import type { Datatype } from '../shared/datatype.js';
import { DomainError } from '../shared/domain-error.js';
import type { ParameterValue } from './inference-request.js';
import { formatShape, shapeElementCount, type ModelSignature, type Tensor } from './tensor.js';

/**
 * Triton's classification extension: an output requested with `classification: k` is answered as
 * the top-k classes of each row instead of its values, a BYTES tensor of "<value>:<index>" strings,
 * or "<value>:<index>:<label>" when the model's configuration gives the output a label file.
 * Shape `[batch, min(k, row elements)]` for a model that batches, `[min(k, elements)]` otherwise.
 */

/** Triton's bound on the elements one row of a classified output may hold: sorting more is refused. */
export const MAX_CLASSIFIED_ELEMENTS = 1_000_000;

/** The datatypes Triton classifies (FP16, BOOL and BYTES are refused by Triton too). */
const CLASSIFIABLE: ReadonlySet<Datatype> = new Set<Datatype>(['UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP32', 'FP64']);

/** The number of classes asked for by an output's `classification` parameter. */
export function classificationCount(output: string, value: ParameterValue): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new DomainError(
      'INFERENCE.INVALID_OUTPUT',
      `output '${output}': parameter 'classification' is ${JSON.stringify(value)}, expected a positive integer (the number of classes to return) up to ${Number.MAX_SAFE_INTEGER}`,
    );
  }
  return value;
}

/** Refuses, before anything runs, a classification of an output whose datatype cannot be ranked. */
export function checkClassifications(classifications: ReadonlyMap<string, number> | undefined, signature: ModelSignature): void {
  for (const name of classifications?.keys() ?? []) {
    const spec = signature.outputs.find((output) => output.name === name);
    if (spec && !CLASSIFIABLE.has(spec.datatype)) {
      throw new DomainError(
        'INFERENCE.INVALID_OUTPUT',
        `output '${name}' is ${spec.datatype}: classification needs a numeric output (${[...CLASSIFIABLE].join(', ')})`,
      );
    }
  }
}

/**
 * The outputs with each one named in `classifications` replaced by its top-k classes. `batched`:
 * the model batches, so the first dimension holds rows, each classified on its own; `labelsOf`
 * gives an output's labels (line i names class i), if its configuration has a label file.
 */
export function classifyOutputs(
  outputs: readonly Tensor[],
  classifications: ReadonlyMap<string, number>,
  batched: boolean,
  labelsOf: (output: string) => readonly string[] | undefined,
): Tensor[] {
  return outputs.map((tensor) => {
    const k = classifications.get(tensor.name);
    return k === undefined ? tensor : topKClassifications(tensor, k, batched, labelsOf(tensor.name));
  });
}

export function topKClassifications(tensor: Tensor, k: number, batched: boolean, labels?: readonly string[]): Tensor {
  if (!CLASSIFIABLE.has(tensor.datatype)) {
    throw new DomainError('INFERENCE.INVALID_OUTPUT', `output '${tensor.name}' is ${tensor.datatype}: classification needs a numeric output`);
  }
  const byRow = batched && tensor.shape.length > 0;
  const rows = byRow ? tensor.shape[0]! : 1;
  const rowLength = shapeElementCount(byRow ? tensor.shape.slice(1) : tensor.shape) ?? Infinity;
  if (rowLength > MAX_CLASSIFIED_ELEMENTS) {
    throw new DomainError(
      'INFERENCE.INVALID_OUTPUT',
      `output '${tensor.name}' has shape ${formatShape(tensor.shape)}: classification ranks at most ${MAX_CLASSIFIED_ELEMENTS} elements per row`,
    );
  }
  const values = tensor.data as ArrayLike<number | bigint>;
  const count = Math.min(k, rowLength);
  const format = tensor.datatype === 'FP32' || tensor.datatype === 'FP64' ? formatFloat : String;
  const classes: string[] = [];
  for (let row = 0; row < rows; row++) {
    const offset = row * rowLength;
    for (const index of topIndices(values, offset, rowLength, count)) {
      const label = labels?.[index];
      classes.push(`${format(values[offset + index] as never)}:${index}${label ? `:${label}` : ''}`);
    }
  }
  return { name: tensor.name, datatype: 'BYTES', shape: byRow ? [rows, count] : [count], data: classes };
}

/**
 * The indices (from `offset`) of the `count` highest of `length` values, highest first; equal
 * values keep index order and NaN ranks below every number. A heap of `count` entries: one pass,
 * O(length log count), so a top-5 of a large output sorts nothing but those five.
 */
function topIndices(values: ArrayLike<number | bigint>, offset: number, length: number, count: number): number[] {
  /** Whether class `a` ranks before class `b`. */
  const before = (a: number, b: number): boolean => {
    const x = values[offset + a]!;
    const y = values[offset + b]!;
    if (x > y) return true;
    if (x < y) return false;
    const xNaN = x !== x;
    const yNaN = y !== y;
    return xNaN === yNaN ? a < b : yNaN;
  };
  if (count === 0) return [];
  // A heap whose root is the lowest-ranked of the best `count` seen so far.
  const heap: number[] = [];
  const siftDown = (start: number): void => {
    let i = start;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let worst = i;
      if (left < heap.length && before(heap[worst]!, heap[left]!)) worst = left;
      if (right < heap.length && before(heap[worst]!, heap[right]!)) worst = right;
      if (worst === i) return;
      [heap[i], heap[worst]] = [heap[worst]!, heap[i]!];
      i = worst;
    }
  };
  for (let index = 0; index < length; index++) {
    if (heap.length < count) {
      heap.push(index);
      for (let i = heap.length - 1; i > 0; ) {
        const parent = (i - 1) >> 1;
        if (!before(heap[parent]!, heap[i]!)) break;
        [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
        i = parent;
      }
    } else if (before(index, heap[0]!)) {
      heap[0] = index;
      siftDown(0);
    }
  }
  return heap.sort((a, b) => (before(a, b) ? -1 : 1));
}

/**
 * A floating-point value as C's `printf("%f")` writes it (Triton formats with `std::to_string`):
 * six decimals of the exact binary value, rounded half to even, and `nan`, `inf`, `-inf`.
 */
export function formatFloat(value: number): string {
  if (Number.isNaN(value)) return 'nan';
  if (!Number.isFinite(value)) return value > 0 ? 'inf' : '-inf';
  const negative = value < 0 || Object.is(value, -0);
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, Math.abs(value));
  const bits = view.getBigUint64(0);
  const biased = Number(bits >> 52n);
  const fraction = bits & 0xf_ffff_ffff_ffffn;
  // |value| = mantissa × 2^exponent, exactly.
  const mantissa = biased === 0 ? fraction : fraction | (1n << 52n);
  const exponent = (biased === 0 ? 1 : biased) - 1075;
  let micros: bigint;
  if (exponent >= 0) {
    micros = (mantissa << BigInt(exponent)) * 1_000_000n;
  } else {
    const scaled = mantissa * 1_000_000n;
    const shift = BigInt(-exponent);
    micros = scaled >> shift;
    const remainder = scaled - (micros << shift);
    const half = 1n << (shift - 1n);
    if (remainder > half || (remainder === half && (micros & 1n) === 1n)) micros += 1n;
  }
  const digits = micros.toString().padStart(7, '0');
  return `${negative ? '-' : ''}${digits.slice(0, -6)}.${digits.slice(-6)}`;
}
