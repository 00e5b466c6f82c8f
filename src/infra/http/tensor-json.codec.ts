import { z } from 'zod';
import { BIGINT_RANGE, DATATYPES, INTEGER_RANGE, TYPED_ARRAY_OF, isDatatype, type Datatype, type TensorData } from '../../domain/shared/datatype.js';
import { DomainError } from '../../domain/shared/domain-error.js';
import type { InferenceRequest, InferenceResponse } from '../../domain/inference/inference-request.js';
import type { Tensor } from '../../domain/inference/tensor.js';
import { classificationCount } from '../../domain/inference/classification.js';
import { fromHalfBits, toHalfBits } from './half-float.js';
import { schemaErrorMessage } from '../validation/schema-error-message.js';

/**
 * The KServe V2 JSON form of tensors, both ways.
 * - `data` may be flat or nested; it is read row-major.
 * - FP16/FP32/FP64 accept the strings "NaN", "Infinity" and "-Infinity" (and, read from the wire,
 *   rapidjson's bare tokens: json-body.ts) for the values JSON numbers cannot hold, and produce the
 *   strings, so every response is valid JSON.
 * - INT64/UINT64 accept exact JSON integers over their full range (past 2^53, the wire's text is
 *   read again keeping every digit: {@link DigitsLost}, json-body.ts) and decimal strings; they are
 *   answered as exact JSON integers (a client that parses numbers as doubles rounds past 2^53).
 */
const parameters = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional();

const inferRequestSchema = z.object({
  id: z.string().optional(),
  parameters,
  inputs: z
    .array(
      z.object({
        name: z.string().min(1),
        shape: z.array(z.number().int().min(0)),
        datatype: z.string(),
        parameters,
        // Absent for an input sent as binary data (see binary-tensor.codec.ts).
        data: z.array(z.unknown()).optional(),
      }),
    )
    .min(1),
  outputs: z.array(z.object({ name: z.string().min(1), parameters })).optional(),
});

/** An infer request's JSON, checked against the protocol's schema (the body, or the JSON header of a binary body). */
export type InferRequestJson = z.infer<typeof inferRequestSchema>;
export type InputJson = InferRequestJson['inputs'][number];

/**
 * Reads the elements of an input that are not in its JSON `data` (the binary tensor data
 * extension); answers undefined for an input whose elements are in its `data`.
 */
export type BinaryInputReader = (input: InputJson, datatype: Datatype) => TensorData | undefined;

/**
 * Thrown while decoding an element of integer, BOOL or BYTES data that is a double past 2^53: the
 * JSON.parse that read it lost its digits. The caller that has the JSON text reads it again keeping
 * them (json-body.ts), which happens only for such bodies (tritonclient's INT64 past 2^53); one
 * that has not answers {@link refusal}, which names the element.
 */
export class DigitsLost extends Error {
  constructor(readonly refusal: DomainError) {
    super(refusal.message);
  }
}

/** Runs a decode, answering the refusal of an element whose digits were lost. */
export function refusingLostDigits<T>(decode: () => T): T {
  try {
    return decode();
  } catch (error) {
    throw error instanceof DigitsLost ? error.refusal : error;
  }
}

export function parseInferRequestJson(body: unknown): InferRequestJson {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new DomainError('INFERENCE.INVALID_REQUEST', 'the request body must be a JSON object with an "inputs" array');
  }
  const parsed = inferRequestSchema.safeParse(body);
  if (!parsed.success) throw new DomainError('INFERENCE.INVALID_REQUEST', schemaErrorMessage(parsed.error, { at: (issue) => whereInRequest(issue, body) }));
  return parsed.data;
}

/** The domain's request from its checked JSON; `readBinary` supplies the inputs sent as binary data. */
export function toInferenceRequest(request: InferRequestJson, readBinary?: BinaryInputReader): InferenceRequest {
  return {
    id: request.id,
    parameters: request.parameters ?? {},
    inputs: request.inputs.map((input) => {
      const datatype = checkedDatatype(input.name, input.datatype);
      const binary = readBinary?.(input, datatype);
      if (binary !== undefined) return { name: input.name, datatype, shape: input.shape, data: binary };
      if (input.data === undefined) throw new DomainError('INFERENCE.INVALID_REQUEST', `input '${input.name}' has no "data"`);
      // DigitsLost goes up to the caller, which may have the JSON text to read again.
      return { name: input.name, datatype, shape: input.shape, data: decodeElements(input.name, datatype, flatten(input.data)) };
    }),
    requestedOutputs: request.outputs?.map((output) => output.name) ?? [],
    classifications: classificationsOf(request.outputs),
  };
}

/** The requested outputs with a `classification` parameter (Triton's extension, a number): name → k. */
function classificationsOf(outputs: InferRequestJson['outputs']): Map<string, number> | undefined {
  const classified = (outputs ?? []).filter((output) => output.parameters?.classification !== undefined);
  if (classified.length === 0) return undefined;
  return new Map(classified.map((output) => [output.name, classificationCount(output.name, output.parameters!.classification!)]));
}

/** Where in an infer request an issue is: `input 'x' (inputs[0].shape)`, or its path. */
function whereInRequest(issue: z.core.$ZodIssue, body: object): string {
  const path = issue.path.map((key) => (typeof key === 'number' ? `[${key}]` : `.${String(key)}`)).join('').replace(/^\./, '');
  const [list, index] = issue.path;
  const named = (body as Record<string, unknown>)[String(list)];
  const name = typeof index === 'number' && Array.isArray(named) ? (named[index] as { name?: unknown } | undefined)?.name : undefined;
  return typeof name === 'string' && (list === 'inputs' || list === 'outputs') ? `${String(list).slice(0, -1)} '${name}' (${path})` : path || 'body';
}

export function decodeTensor(name: string, datatype: string, shape: number[], data: unknown[]): Tensor {
  const checked = checkedDatatype(name, datatype);
  return { name, datatype: checked, shape, data: refusingLostDigits(() => decodeElements(name, checked, flatten(data))) };
}

/** Nested `data`, row-major. */
function flatten(data: unknown[]): unknown[] {
  return data.length > 0 && Array.isArray(data[0]) ? (data.flat(Infinity) as unknown[]) : data;
}

function checkedDatatype(name: string, datatype: string): Datatype {
  if (!isDatatype(datatype)) {
    throw new DomainError('INFERENCE.INVALID_DATATYPE', `input '${name}' has datatype '${datatype}', which is not one of ${DATATYPES.join(', ')}`);
  }
  return datatype;
}

function decodeElements(name: string, datatype: Datatype, values: unknown[]): TensorData {
  const bad: (index: number, expected: string) => never = (index, expected) => {
    const value = values[index];
    const shown = shownValue(value);
    const refusal = new DomainError('INFERENCE.INVALID_DATA', `input '${name}': element ${index} is ${shown.length > 40 ? `${shown.slice(0, 40)}…` : shown}, expected ${expected} for ${datatype}`);
    throw isUnsafeInteger(value) ? new DigitsLost(refusal) : refusal;
  };
  if (datatype === 'BYTES') {
    for (let i = 0; i < values.length; i++) if (typeof values[i] !== 'string') bad(i, 'a string');
    return values as string[];
  }
  const out = new TYPED_ARRAY_OF[datatype](values.length);
  if (datatype === 'BOOL') {
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (typeof v !== 'boolean') bad(i, 'true or false');
      out[i] = v ? 1 : 0;
    }
  } else if (datatype === 'FP16' || datatype === 'FP32' || datatype === 'FP64') {
    for (let i = 0; i < values.length; i++) {
      const value = values[i];
      const v = typeof value === 'number' ? value : typeof value === 'bigint' ? Number(value) : SPECIAL_FLOATS.get(value);
      if (v === undefined) bad(i, 'a number (or "NaN", "Infinity", "-Infinity")');
      out[i] = datatype === 'FP16' ? toHalfBits(v) : v;
    }
  } else if (datatype === 'INT64' || datatype === 'UINT64') {
    const [min, max] = BIGINT_RANGE[datatype]!;
    const big = out as BigInt64Array | BigUint64Array;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      let n: bigint | undefined;
      if (typeof v === 'bigint') n = v;
      else if (typeof v === 'number' && Number.isSafeInteger(v)) n = BigInt(v);
      else if (typeof v === 'string' && /^-?\d{1,20}$/.test(v)) n = BigInt(v);
      if (n === undefined) bad(i, 'an integer (its exact digits, or a decimal string)');
      if (n! < min || n! > max) bad(i, `an integer from ${min} to ${max}`);
      big[i] = n!;
    }
  } else {
    const [min, max] = INTEGER_RANGE[datatype]!;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) bad(i, `an integer from ${min} to ${max}`);
      out[i] = v as number;
    }
  }
  return out as TensorData;
}

/**
 * An element as an error message quotes it: a bigint by its digits (the ones sent), and a double
 * past 2^53 in exponent form, so that its rounded digits never pass for the ones sent.
 */
function shownValue(value: unknown): string {
  if (typeof value === 'bigint') return String(value);
  if (isUnsafeInteger(value)) return value.toExponential();
  return JSON.stringify(value) ?? String(value);
}

/** A double that is an integer past 2^53: one whose decimal digits a JSON.parse may have lost. */
function isUnsafeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && !Number.isSafeInteger(value);
}

const SPECIAL_FLOATS = new Map<unknown, number>([['NaN', NaN], ['Infinity', Infinity], ['-Infinity', -Infinity]]);

/**
 * Writes the response by hand: typed arrays and 64-bit integers have no exact JSON.stringify form.
 * `binaryDataSize` gives the byte size of an output sent as binary data after the JSON (its JSON
 * then has that size as a parameter and no `data`); undefined for an output written in JSON.
 * An output `inSharedMemory` has neither: its name, datatype and shape only (Triton's form).
 */
export function encodeInferResponse(
  response: InferenceResponse,
  binaryDataSize: (tensor: Tensor) => number | undefined = () => undefined,
  inSharedMemory: (tensor: Tensor) => boolean = () => false,
): string {
  const outputs = response.outputs
    .map((t) => {
      const size = binaryDataSize(t);
      const content = inSharedMemory(t) ? '' : size === undefined ? `,"data":${encodeData(t)}` : `,"parameters":{"binary_data_size":${size}}`;
      return `{"name":${JSON.stringify(t.name)},"datatype":"${t.datatype}","shape":[${t.shape.join(',')}]${content}}`;
    })
    .join(',');
  const id = response.id === undefined ? '' : `"id":${JSON.stringify(response.id)},`;
  return `{"model_name":${JSON.stringify(response.modelName)},"model_version":${JSON.stringify(response.modelVersion)},${id}"parameters":${JSON.stringify(response.parameters)},"outputs":[${outputs}]}`;
}

function encodeData(tensor: Tensor): string {
  const { datatype, data } = tensor;
  switch (datatype) {
    case 'BYTES':
      return JSON.stringify(data);
    case 'BOOL':
      return `[${Array.from(data as Uint8Array, (v) => (v ? 'true' : 'false')).join(',')}]`;
    case 'FP16':
      return `[${Array.from(data as Uint16Array, (bits) => encodeFloat(fromHalfBits(bits))).join(',')}]`;
    case 'FP32':
    case 'FP64':
      return `[${Array.from(data as Float32Array | Float64Array, encodeFloat).join(',')}]`;
    default:
      // Integers, including BigInt64Array/BigUint64Array: join() writes every digit exactly.
      return `[${(data as Int32Array).join(',')}]`;
  }
}

function encodeFloat(value: number): string {
  if (Number.isFinite(value)) return Object.is(value, -0) ? '-0' : String(value);
  return Number.isNaN(value) ? '"NaN"' : value > 0 ? '"Infinity"' : '"-Infinity"';
}
