import { DATATYPES, INTEGER_RANGE, TYPED_ARRAY_OF, isDatatype, type Datatype, type TensorData } from '../../domain/shared/datatype.js';
import { DomainError } from '../../domain/shared/domain-error.js';
import type { InferenceRequest, InferenceResponse, ParameterValue } from '../../domain/inference/inference-request.js';
import type { Tensor } from '../../domain/inference/tensor.js';
import type { RegionSlice, SystemSharedMemory } from '../../domain/shared-memory/system-shared-memory.js';
import type { InputHeader } from '../../domain/inference/inference-request.js';
import { decodeRawTensor, encodeRawTensor, rawElementCount, utf8TextOf } from '../transport/raw-tensor.codec.js';
import { DeferredContents } from './deferred-tensor-contents.js';
import { classificationCount } from '../../domain/inference/classification.js';
import { GRPC_INPUT_PARAMETERS, GRPC_OUTPUT_PARAMETERS, REQUEST_PARAMETERS, refuseUnknownParameters, sharedMemorySliceOf } from '../transport/tensor-parameters.js';
import { malformedReason } from './malformed-request.js';
import type {
  Int64,
  InferParameterMessage,
  InferTensorContentsMessage,
  ModelInferRequestMessage,
  ModelInferResponseMessage,
  OutputTensorMessage,
} from './inference-messages.js';

/** Which form a response's tensors take: the typed `contents` fields, or `raw_output_contents`. */
export type TensorForm = 'typed' | 'raw';

export interface DecodedInferRequest {
  readonly modelName: string;
  readonly modelVersion?: string;
  readonly request: InferenceRequest;
  /** The form the answer takes: the request's own, unless its `binary_data_output` parameter says otherwise. */
  readonly responseForm: TensorForm;
  /** The outputs to write into shared memory (Triton's shared memory extension), by name. */
  readonly sharedMemoryOutputs: ReadonlyMap<string, RegionSlice>;
}

/** The typed-contents field that carries each datatype (FP16 has none: it travels only raw). */
const CONTENTS_FIELD_OF: Record<Datatype, keyof InferTensorContentsMessage | undefined> = {
  BOOL: 'bool_contents',
  INT8: 'int_contents',
  INT16: 'int_contents',
  INT32: 'int_contents',
  INT64: 'int64_contents',
  UINT8: 'uint_contents',
  UINT16: 'uint_contents',
  UINT32: 'uint_contents',
  UINT64: 'uint64_contents',
  FP16: undefined,
  FP32: 'fp32_contents',
  FP64: 'fp64_contents',
  BYTES: 'bytes_contents',
};

const CONTENTS_FIELDS = Object.keys({
  bool_contents: 0,
  int_contents: 0,
  int64_contents: 0,
  uint_contents: 0,
  uint64_contents: 0,
  fp32_contents: 0,
  fp64_contents: 0,
  bytes_contents: 0,
} satisfies Record<keyof InferTensorContentsMessage, 0>) as (keyof InferTensorContentsMessage)[];

/**
 * A `ModelInferRequest` as the domain's request. Inputs come in one of two forms, never mixed:
 * typed `contents` (the field of the input's datatype) or `raw_input_contents` (one entry per input,
 * in input order). BYTES elements must be UTF-8 text (onnxruntime-node's string tensors are text).
 * An input naming a shared memory region is read from it through `sharedMemory` and has no
 * contents and no raw_input_contents entry (Triton's and tritonclient's rule). Parameters this
 * server does not act on are refused (tensor-parameters.ts).
 */
export function decodeModelInferRequest(message: ModelInferRequestMessage, sharedMemory?: Pick<SystemSharedMemory, 'read'>): DecodedInferRequest {
  return readModelInferRequest(message).decode(sharedMemory);
}

/**
 * A request read up to its elements: everything but them is checked, and `inputs` say what each
 * input declares and how many elements it carries (counted on the wire, not decoded), for the
 * request to be judged against the model before `decode` converts a single element.
 */
export interface GrpcInferEnvelope {
  readonly modelName: string;
  readonly modelVersion?: string;
  readonly inputs: readonly InputHeader[];
  readonly requestedOutputs: readonly string[];
  decode(sharedMemory?: Pick<SystemSharedMemory, 'read'>): DecodedInferRequest;
}

/** Where an input's elements are. */
type InputSource =
  | { readonly kind: 'shared-memory'; readonly slice: RegionSlice }
  | { readonly kind: 'raw'; readonly entry: Buffer }
  | { readonly kind: 'typed'; readonly contents: InferTensorContentsMessage | DeferredContents | undefined };

export function readModelInferRequest(message: ModelInferRequestMessage): GrpcInferEnvelope {
  const malformed = malformedReason(message);
  if (malformed !== undefined) throw invalidRequest(`the request is not a valid ModelInferRequest protobuf message: ${malformed}`);
  if (!message.model_name) throw invalidRequest('model_name is empty');
  const raw = message.raw_input_contents;
  const inputs = message.inputs;
  if (inputs.length === 0) throw invalidRequest('the request has no inputs');
  const parameters = decodeParameters(message.parameters, 'parameters');
  refuseUnknownParameters(parameters, REQUEST_PARAMETERS, 'the request');
  const inputParameters = inputs.map((input, index) => {
    const decoded = decodeParameters(input.parameters, `input '${input.name || `#${index}`}' parameters`);
    refuseUnknownParameters(decoded, GRPC_INPUT_PARAMETERS, `input '${input.name || `#${index}`}'`);
    return decoded;
  });
  const slices = inputParameters.map((decoded, index) => sharedMemorySliceOf(decoded, `input '${inputs[index]!.name || `#${index}`}'`));
  const rawInputs = slices.filter((slice) => slice === undefined).length;
  // Triton's words, which NVIDIA's grpc_explicit_*_content_client examples look for (checked before the count, as Triton does).
  const mixed = raw.length > 0 ? inputs.find((input, index) => slices[index] === undefined && hasContents(input.contents)) : undefined;
  if (mixed) {
    throw invalidRequest(`contents field must not be specified when using raw_input_contents for '${mixed.name ?? ''}' for model '${message.model_name}': send every input in one form`);
  }
  if (raw.length > 0 && raw.length !== rawInputs) {
    throw invalidRequest(
      `raw_input_contents has ${raw.length} entries but the request has ${rawInputs} inputs outside shared memory: give one per such input, in input order`,
    );
  }
  let rawIndex = 0;
  const read = inputs.map((input, index) => {
    const name = input.name || `#${index}`;
    if (!input.name) throw invalidRequest(`input ${index} has no name`);
    if (!isDatatype(input.datatype)) {
      throw new DomainError('INFERENCE.INVALID_DATATYPE', `input '${name}' has datatype '${input.datatype ?? ''}', which is not one of ${DATATYPES.join(', ')}`);
    }
    const datatype = input.datatype;
    const shape = input.shape.map((dim, axis) => {
      const number = Number(dim);
      // Beyond 2^53 a number would misquote the client's dimension; the domain checks the rest.
      if (!Number.isSafeInteger(number)) throw new DomainError('INFERENCE.INVALID_SHAPE', `input '${name}' has an invalid dimension ${dim} at axis ${axis}`);
      return number;
    });
    const slice = slices[index];
    const binaryDataSize = inputParameters[index]!.binary_data_size;
    let source: InputSource;
    if (slice) {
      if (hasContents(input.contents) || binaryDataSize !== undefined) {
        throw invalidRequest(`input '${name}' names shared memory region '${slice.region}' and also has ${binaryDataSize !== undefined ? 'binary_data_size' : 'contents'}: send its elements one way`);
      }
      source = { kind: 'shared-memory', slice };
    } else if (raw.length > 0) {
      const entry = raw[rawIndex++]!;
      if (binaryDataSize !== undefined && binaryDataSize !== entry.length) {
        throw invalidRequest(`input '${name}': binary_data_size is ${JSON.stringify(binaryDataSize)}, but its raw_input_contents entry has ${entry.length} bytes`);
      }
      source = { kind: 'raw', entry };
    } else {
      if (binaryDataSize !== undefined) throw invalidRequest(`input '${name}' has binary_data_size but the request has no raw_input_contents`);
      source = { kind: 'typed', contents: input.contents };
    }
    return { name, datatype, shape, source, elementCount: elementCountOf(name, datatype, shape, source) };
  });
  const requestedOutputs = message.outputs.map((output, index) => {
    if (!output.name) throw invalidRequest(`output ${index} has no name`);
    return output.name;
  });
  const binaryDataOutput = parameters.binary_data_output;
  if (binaryDataOutput !== undefined && typeof binaryDataOutput !== 'boolean') {
    throw invalidRequest(`parameter 'binary_data_output' is ${JSON.stringify(binaryDataOutput)}, expected a bool_param`);
  }
  // Raw answers, as Triton's (its clients read raw_output_contents); binary_data_output false asks for typed contents.
  const responseForm: TensorForm = binaryDataOutput === false ? 'typed' : 'raw';
  const classifications = classificationsOf(message.outputs);
  const sharedMemoryOutputs = sharedMemoryOutputsOf(message.outputs);
  return {
    modelName: message.model_name,
    modelVersion: message.model_version || undefined,
    inputs: read.map(({ name, datatype, shape, elementCount }) => ({ name, datatype, shape, elementCount })),
    requestedOutputs,
    decode: (sharedMemory) => ({
      modelName: message.model_name!,
      modelVersion: message.model_version || undefined,
      request: {
        id: message.id || undefined,
        parameters,
        inputs: read.map(({ name, datatype, shape, source }) => ({ name, datatype, shape, data: decodeInput(name, datatype, shape, source, sharedMemory) })),
        requestedOutputs,
        classifications,
      },
      responseForm,
      sharedMemoryOutputs,
    }),
  };
}

function decodeInput(name: string, datatype: Datatype, shape: number[], source: InputSource, sharedMemory: Pick<SystemSharedMemory, 'read'> | undefined): TensorData {
  if (source.kind === 'shared-memory') {
    if (!sharedMemory) throw invalidRequest(`input '${name}': shared memory is not available here`);
    const bytes = sharedMemory.read(source.slice, name);
    const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return decodeRawTensor(name, datatype, shape, view, `its slice of shared memory region '${source.slice.region}' (shared_memory_byte_size)`);
  }
  if (source.kind === 'raw') return decodeRawTensor(name, datatype, shape, source.entry, 'its raw_input_contents entry', { owned: true });
  const contents = source.contents instanceof DeferredContents ? (source.contents.decode() as InferTensorContentsMessage) : source.contents;
  return decodeTyped(name, datatype, contents);
}

/** How many elements an input carries, counted without decoding them; undefined when the bytes do not tell. */
function elementCountOf(name: string, datatype: Datatype, shape: readonly number[], source: InputSource): number | undefined {
  // A shared memory slice is only read (within MAX_REQUEST_BYTES) when the request is decoded.
  if (source.kind === 'shared-memory') return undefined;
  if (source.kind === 'raw') return rawElementCount(name, datatype, shape, source.entry, 'its raw_input_contents entry');
  const field = typedFieldOf(name, datatype);
  const counts = countsOf(source.contents);
  const stray = CONTENTS_FIELDS.find((other) => other !== field && (counts[other] ?? 0) > 0);
  if (stray) throw invalidData(`input '${name}' is ${datatype}, so its elements go in contents.${field}, not contents.${stray}`);
  return counts[field] ?? 0;
}

/** Elements per contents field: counted on the wire for deferred contents, the arrays' lengths otherwise. */
function countsOf(contents: InferTensorContentsMessage | DeferredContents | undefined): Partial<Record<keyof InferTensorContentsMessage, number>> {
  if (contents === undefined) return {};
  if (!(contents instanceof DeferredContents)) return Object.fromEntries(CONTENTS_FIELDS.map((field) => [field, contents[field]?.length ?? 0]));
  try {
    return contents.elementCounts();
  } catch (error) {
    throw invalidRequest(`the request is not a valid ModelInferRequest protobuf message: ${(error as Error).message}`);
  }
}

/** The typed contents field of a datatype; FP16 has none. */
function typedFieldOf(name: string, datatype: Datatype): keyof InferTensorContentsMessage {
  const field = CONTENTS_FIELD_OF[datatype];
  if (field === undefined) {
    throw invalidData(`input '${name}' is ${datatype}, which has no typed contents field: send it in raw_input_contents`);
  }
  return field;
}

/** The requested outputs to write into shared memory; such an output cannot also be a classification. */
function sharedMemoryOutputsOf(outputs: ModelInferRequestMessage['outputs']): Map<string, RegionSlice> {
  const slices = new Map<string, RegionSlice>();
  for (const output of outputs) {
    const owner = `output '${output.name ?? ''}'`;
    const parameters = decodeParameters(output.parameters, `${owner} parameters`);
    refuseUnknownParameters(parameters, GRPC_OUTPUT_PARAMETERS, owner);
    const slice = sharedMemorySliceOf(parameters, owner);
    if (!slice) continue;
    if (parameters.classification !== undefined || parameters.class_count !== undefined) {
      throw invalidRequest(`${owner} cannot be both in shared memory region '${slice.region}' and a classification`);
    }
    slices.set(output.name ?? '', slice);
  }
  return slices;
}

/**
 * The domain's response as a `ModelInferResponse` in the given form. FP16 has no typed field, so a
 * response with an FP16 output is raw whatever was asked (the protocol forbids mixing the forms).
 * An output `inSharedMemory` has its name, datatype and shape only: no contents, and an empty
 * raw_output_contents entry (Triton's form).
 */
export function encodeModelInferResponse(response: InferenceResponse, form: TensorForm, inSharedMemory: (name: string) => boolean = () => false): ModelInferResponseMessage {
  const raw = form === 'raw' || response.outputs.some((output) => CONTENTS_FIELD_OF[output.datatype] === undefined && !inSharedMemory(output.name));
  const outputs: OutputTensorMessage[] = response.outputs.map((tensor) => ({
    name: tensor.name,
    datatype: tensor.datatype,
    shape: tensor.shape as number[],
    contents: raw || inSharedMemory(tensor.name) ? undefined : encodeTyped(tensor),
  }));
  return {
    model_name: response.modelName,
    model_version: response.modelVersion,
    id: response.id ?? '',
    parameters: encodeParameters(response.parameters),
    outputs,
    raw_output_contents: raw ? response.outputs.map((tensor) => (inSharedMemory(tensor.name) ? Buffer.alloc(0) : encodeRawTensor(tensor))) : [],
  };
}

/** Request parameters as the domain's values; 64-bit integers become numbers when they fit, decimal strings otherwise. */
export function decodeParameters(map: Record<string, InferParameterMessage> | undefined, where: string): Record<string, ParameterValue> {
  const out: Record<string, ParameterValue> = {};
  for (const [key, parameter] of Object.entries(map ?? {})) {
    const choice = parameter.parameter_choice;
    if (choice === undefined) throw invalidRequest(`${where}['${key}'] has no value`);
    const value = parameter[choice]!;
    if (choice === 'int64_param' || choice === 'uint64_param') {
      const number = Number(value);
      out[key] = Number.isSafeInteger(number) ? number : String(value);
    } else {
      out[key] = value as ParameterValue;
    }
  }
  return out;
}

export function encodeParameters(parameters: Readonly<Record<string, ParameterValue>>): Record<string, InferParameterMessage> {
  const out: Record<string, InferParameterMessage> = {};
  for (const [key, value] of Object.entries(parameters)) {
    if (typeof value === 'boolean') out[key] = { bool_param: value };
    else if (typeof value === 'string') out[key] = { string_param: value };
    else if (Number.isSafeInteger(value)) out[key] = { int64_param: String(value) };
    else out[key] = { double_param: value };
  }
  return out;
}

// ---- typed contents --------------------------------------------------------------------------

function hasContents(contents: InferTensorContentsMessage | DeferredContents | undefined): boolean {
  const counts = countsOf(contents);
  return CONTENTS_FIELDS.some((field) => (counts[field] ?? 0) > 0);
}

function decodeTyped(name: string, datatype: Datatype, contents: InferTensorContentsMessage | undefined): TensorData {
  const field = typedFieldOf(name, datatype);
  const stray = contents && CONTENTS_FIELDS.find((other) => other !== field && (contents[other]?.length ?? 0) > 0);
  if (stray) throw invalidData(`input '${name}' is ${datatype}, so its elements go in contents.${field}, not contents.${stray}`);
  const values = (contents?.[field] ?? []) as unknown[];
  switch (datatype) {
    case 'BYTES':
      return (values as Buffer[]).map((bytes, i) => utf8TextOf(name, i, bytes));
    case 'BOOL':
      return Uint8Array.from(values as boolean[], (v) => (v ? 1 : 0));
    // Protobuf already bounds 64-bit values to the field's type.
    case 'INT64':
      return BigInt64Array.from(values as Int64[], (v) => BigInt(v));
    case 'UINT64':
      return BigUint64Array.from(values as Int64[], (v) => BigInt(v));
    case 'FP32':
      return Float32Array.from(values as number[]);
    case 'FP64':
      return Float64Array.from(values as number[]);
    default: {
      const [min, max] = INTEGER_RANGE[datatype]!;
      const numbers = values as number[];
      const outOfRange = numbers.findIndex((v) => v < min || v > max);
      if (outOfRange >= 0) throw invalidData(`input '${name}': element ${outOfRange} is ${numbers[outOfRange]}, expected an integer from ${min} to ${max} for ${datatype}`);
      const out = new TYPED_ARRAY_OF[datatype](numbers.length);
      (out as Int32Array).set(numbers);
      return out as TensorData;
    }
  }
}

function encodeTyped(tensor: Tensor): InferTensorContentsMessage {
  const field = CONTENTS_FIELD_OF[tensor.datatype]!;
  const data = tensor.data;
  let values: unknown[];
  if (tensor.datatype === 'BYTES') values = (data as string[]).map((text) => Buffer.from(text, 'utf8'));
  else if (tensor.datatype === 'BOOL') values = Array.from(data as Uint8Array, (v) => v !== 0);
  else if (tensor.datatype === 'INT64' || tensor.datatype === 'UINT64') values = Array.from(data as BigInt64Array, String);
  else values = Array.from(data as Float32Array);
  return { [field]: values } as InferTensorContentsMessage;
}

function invalidRequest(message: string): DomainError {
  return new DomainError('INFERENCE.INVALID_REQUEST', message);
}

function invalidData(message: string): DomainError {
  return new DomainError('INFERENCE.INVALID_DATA', message);
}

/** The outputs asked as classifications (Triton's `classification` output parameter): output name to class count. */
function classificationsOf(outputs: ModelInferRequestMessage['outputs']): Map<string, number> | undefined {
  let classifications: Map<string, number> | undefined;
  for (const output of outputs) {
    if (!output.parameters || Object.keys(output.parameters).length === 0) continue;
    const value = decodeParameters(output.parameters, `outputs['${output.name}'].parameters`).classification;
    if (value === undefined) continue;
    classifications ??= new Map();
    classifications.set(output.name!, classificationCount(output.name!, value));
  }
  return classifications;
}
