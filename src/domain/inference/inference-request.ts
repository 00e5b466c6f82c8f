import { DATATYPES, isDatatype } from '../shared/datatype.js';
import { DomainError } from '../shared/domain-error.js';
import { formatShape, shapeElementCount, type ModelSignature, type Tensor, type TensorSpec } from './tensor.js';

export type ParameterValue = string | number | boolean;

export interface InferenceRequest {
  readonly id?: string;
  readonly parameters: Readonly<Record<string, ParameterValue>>;
  readonly inputs: readonly Tensor[];
  /** Output names the client asked for; empty means every output of the model. */
  readonly requestedOutputs: readonly string[];
  /** Requested outputs to answer as their top-k classes (Triton's classification extension): name → k. */
  readonly classifications?: ReadonlyMap<string, number>;
}

export interface InferenceResponse {
  readonly modelName: string;
  readonly modelVersion: string;
  readonly id?: string;
  readonly parameters: Readonly<Record<string, ParameterValue>>;
  readonly outputs: readonly Tensor[];
}

/**
 * What a transport knows of an input before it decodes any element: its declared name, datatype
 * and shape, and how many elements it carries when the body tells that without decoding them (the
 * length of a JSON array, a byte count over the element size); undefined when it does not.
 */
export interface InputHeader {
  readonly name: string;
  readonly datatype: string;
  readonly shape: readonly number[];
  readonly elementCount?: number;
}

/**
 * Checks a request against what the model serves, before anything reaches a runtime: every input
 * present once and known, datatypes equal, shapes compatible (the batch dimension bounded by
 * `maxBatchSize` when the model batches), element counts equal to the shapes, outputs known and
 * unique. Returns the output names to compute.
 */
export function validateInferenceRequest(
  request: InferenceRequest,
  signature: ModelSignature,
  maxBatchSize: number,
): string[] {
  checkInputHeaders(request.inputs.map((input) => ({ ...input, elementCount: input.data.length })), signature, maxBatchSize);
  return selectOutputs(request.requestedOutputs, signature);
}

/**
 * The checks of {@link validateInferenceRequest} on what a transport read before decoding any
 * element: a request refused here never has its elements decoded (a body of millions of elements
 * for the wrong shape costs a scan, not a decode). Element counts are checked where known.
 */
export function judgeInputHeaders(
  inputs: readonly InputHeader[],
  requestedOutputs: readonly string[],
  signature: ModelSignature,
  maxBatchSize: number,
): void {
  checkInputHeaders(inputs, signature, maxBatchSize);
  selectOutputs(requestedOutputs, signature);
}

function checkInputHeaders(inputs: readonly InputHeader[], signature: ModelSignature, maxBatchSize: number): void {
  const specs = new Map(signature.inputs.map((spec) => [spec.name, spec]));
  const seen = new Set<string>();
  for (const input of inputs) {
    const spec = specs.get(input.name);
    if (!spec) {
      throw new DomainError(
        'INFERENCE.INVALID_INPUT',
        `unknown input '${input.name}': the model's inputs are ${quoteList(signature.inputs)}`,
      );
    }
    if (seen.has(input.name)) {
      throw new DomainError('INFERENCE.INVALID_INPUT', `input '${input.name}' is given more than once`);
    }
    seen.add(input.name);
    checkTensorAgainstSpec(input, spec, maxBatchSize);
  }
  const missing = signature.inputs.filter((spec) => !seen.has(spec.name));
  if (missing.length > 0) {
    throw new DomainError('INFERENCE.INVALID_INPUT', `missing input ${quoteList(missing)}: the model expects ${quoteList(signature.inputs)}`);
  }
  checkBatchDimensionsAgree(inputs, maxBatchSize);
}

function checkTensorAgainstSpec(input: InputHeader, spec: TensorSpec, maxBatchSize: number): void {
  if (!isDatatype(input.datatype)) {
    throw new DomainError('INFERENCE.INVALID_DATATYPE', `input '${input.name}' has datatype '${input.datatype}', which is not one of ${DATATYPES.join(', ')}`);
  }
  if (input.datatype !== spec.datatype) {
    throw new DomainError(
      'INFERENCE.INVALID_DATATYPE',
      `input '${input.name}' has datatype ${input.datatype}, expected ${spec.datatype}`,
    );
  }
  const expected = formatShape(spec.shape);
  if (input.shape.length !== spec.shape.length) {
    throw new DomainError(
      'INFERENCE.INVALID_SHAPE',
      `input '${input.name}' has shape ${formatShape(input.shape)} (rank ${input.shape.length}), expected ${expected} (rank ${spec.shape.length})`,
    );
  }
  input.shape.forEach((dim, axis) => {
    if (!Number.isSafeInteger(dim) || dim < 0) {
      throw new DomainError('INFERENCE.INVALID_SHAPE', `input '${input.name}' has an invalid dimension ${dim} at axis ${axis}`);
    }
    const declared = spec.shape[axis];
    if (declared !== -1 && declared !== dim) {
      throw new DomainError(
        'INFERENCE.INVALID_SHAPE',
        `input '${input.name}' has shape ${formatShape(input.shape)}, expected ${expected} (axis ${axis} must be ${declared})`,
      );
    }
  });
  if (maxBatchSize > 0) {
    const batch = input.shape[0];
    if (batch < 1 || batch > maxBatchSize) {
      throw new DomainError(
        'INFERENCE.INVALID_SHAPE',
        `input '${input.name}' has batch size ${batch}, expected 1 to ${maxBatchSize} (the model's max_batch_size)`,
      );
    }
  }
  const count = shapeElementCount(input.shape);
  if (count === undefined) {
    throw new DomainError('INFERENCE.INVALID_SHAPE', `input '${input.name}' has shape ${formatShape(input.shape)} whose element count overflows`);
  }
  if (input.elementCount !== undefined && count !== input.elementCount) {
    throw new DomainError(
      'INFERENCE.INVALID_DATA',
      `input '${input.name}' has ${input.elementCount} elements, but its shape ${formatShape(input.shape)} holds ${count}`,
    );
  }
}

function checkBatchDimensionsAgree(inputs: readonly InputHeader[], maxBatchSize: number): void {
  if (maxBatchSize === 0 || inputs.length < 2) return;
  const [first, ...rest] = inputs;
  const other = rest.find((input) => input.shape[0] !== first.shape[0]);
  if (other) {
    throw new DomainError(
      'INFERENCE.INVALID_SHAPE',
      `inputs disagree on the batch size: '${first.name}' has ${first.shape[0]}, '${other.name}' has ${other.shape[0]}`,
    );
  }
}

function selectOutputs(requested: readonly string[], signature: ModelSignature): string[] {
  if (requested.length === 0) return signature.outputs.map((spec) => spec.name);
  const known = new Set(signature.outputs.map((spec) => spec.name));
  const seen = new Set<string>();
  for (const name of requested) {
    if (!known.has(name)) {
      throw new DomainError('INFERENCE.INVALID_OUTPUT', `unknown output '${name}': the model's outputs are ${quoteList(signature.outputs)}`);
    }
    if (seen.has(name)) {
      throw new DomainError('INFERENCE.INVALID_OUTPUT', `output '${name}' is requested more than once`);
    }
    seen.add(name);
  }
  return [...requested];
}

/** Triton's request parameters for the scheduler: `priority` (a level) and `timeout` (microseconds). */
export interface SchedulingParameters {
  readonly priority?: number;
  readonly timeoutMicros?: number;
}

export function schedulingParametersOf(request: InferenceRequest): SchedulingParameters {
  return { priority: nonNegativeInteger(request, 'priority'), timeoutMicros: nonNegativeInteger(request, 'timeout') };
}

function nonNegativeInteger(request: InferenceRequest, name: string): number | undefined {
  const value = request.parameters[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new DomainError('INFERENCE.INVALID_REQUEST', `parameter '${name}' is ${JSON.stringify(value)}, expected a non-negative integer`);
  }
  return value;
}

function quoteList(specs: readonly { name: string }[]): string {
  return specs.map((spec) => `'${spec.name}'`).join(', ');
}
