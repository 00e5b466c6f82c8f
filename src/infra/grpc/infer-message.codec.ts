import { DATATYPES, INTEGER_RANGE, TYPED_ARRAY_OF, isDatatype, type Datatype, type TensorData } from '../../domain/shared/datatype.js';
import { DomainError } from '../../domain/shared/domain-error.js';
import type { InferenceRequest, InferenceResponse, ParameterValue } from '../../domain/inference/inference-request.js';
import type { Tensor } from '../../domain/inference/tensor.js';
import { classificationCount } from '../../domain/inference/classification.js';
import { decodeRawTensor, encodeRawTensor, utf8TextOf } from '../transport/raw-tensor.codec.js';
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
  /** The form the answer takes: raw (Triton's), unless the request parameter `binary_data_output` is false. */
  readonly responseForm: TensorForm;
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
 */
export function decodeModelInferRequest(message: ModelInferRequestMessage): DecodedInferRequest {
  const malformed = malformedReason(message);
  if (malformed !== undefined) throw invalidRequest(`the request is not a valid ModelInferRequest protobuf message: ${malformed}`);
  if (!message.model_name) throw invalidRequest('model_name is empty');
  const raw = message.raw_input_contents;
  const inputs = message.inputs;
  if (inputs.length === 0) throw invalidRequest('the request has no inputs');
  // Triton's words, which NVIDIA's grpc_explicit_*_content_client examples look for.
  const mixed = raw.length > 0 ? inputs.find((input) => input.contents && hasContents(input.contents)) : undefined;
  if (mixed) {
    throw invalidRequest(
      `contents field must not be specified when using raw_input_contents for '${mixed.name ?? ''}' for model '${message.model_name}': send every input in one form`,
    );
  }
  if (raw.length > 0 && raw.length !== inputs.length) {
    throw invalidRequest(`raw_input_contents has ${raw.length} entries but the request has ${inputs.length} inputs: give one per input, in input order`);
  }
  const parameters = decodeParameters(message.parameters, 'parameters');
  const request: InferenceRequest = {
    id: message.id || undefined,
    parameters,
    inputs: inputs.map((input, index) => {
      const name = input.name || `#${index}`;
      if (!input.name) throw invalidRequest(`input ${index} has no name`);
      if (!isDatatype(input.datatype)) {
        throw new DomainError('INFERENCE.INVALID_DATATYPE', `input '${name}' has datatype '${input.datatype ?? ''}', which is not one of ${DATATYPES.join(', ')}`);
      }
      const shape = input.shape.map((dim, axis) => {
        const number = Number(dim);
        // Beyond 2^53 a number would misquote the client's dimension; the domain checks the rest.
        if (!Number.isSafeInteger(number)) throw new DomainError('INFERENCE.INVALID_SHAPE', `input '${name}' has an invalid dimension ${dim} at axis ${axis}`);
        return number;
      });
      if (raw.length > 0) {
        return { name, datatype: input.datatype, shape, data: decodeRawTensor(name, input.datatype, shape, raw[index], 'its raw_input_contents entry') };
      }
      return { name, datatype: input.datatype, shape, data: decodeTyped(name, input.datatype, input.contents) };
    }),
    requestedOutputs: message.outputs.map((output, index) => {
      if (!output.name) throw invalidRequest(`output ${index} has no name`);
      return output.name;
    }),
    classifications: classificationsOf(message.outputs),
  };
  const binaryDataOutput = parameters.binary_data_output;
  if (binaryDataOutput !== undefined && typeof binaryDataOutput !== 'boolean') {
    throw invalidRequest(`parameter 'binary_data_output' is ${JSON.stringify(binaryDataOutput)}, expected a bool_param`);
  }
  // Triton always answers raw_output_contents over gRPC; `binary_data_output: false` is this server's way to ask for typed contents.
  const responseForm: TensorForm = binaryDataOutput === false ? 'typed' : 'raw';
  return { modelName: message.model_name, modelVersion: message.model_version || undefined, request, responseForm };
}

/**
 * The domain's response as a `ModelInferResponse` in the given form. FP16 has no typed field, so a
 * response with an FP16 output is raw whatever was asked (the protocol forbids mixing the forms).
 */
export function encodeModelInferResponse(response: InferenceResponse, form: TensorForm): ModelInferResponseMessage {
  const raw = form === 'raw' || response.outputs.some((output) => CONTENTS_FIELD_OF[output.datatype] === undefined);
  const outputs: OutputTensorMessage[] = response.outputs.map((tensor) => ({
    name: tensor.name,
    datatype: tensor.datatype,
    shape: tensor.shape as number[],
    contents: raw ? undefined : encodeTyped(tensor),
  }));
  return {
    model_name: response.modelName,
    model_version: response.modelVersion,
    id: response.id ?? '',
    parameters: encodeParameters(response.parameters),
    outputs,
    raw_output_contents: raw ? response.outputs.map(encodeRawTensor) : [],
  };
}

/** The requested outputs with a `classification` parameter (Triton's extension, an int64_param): name → k. */
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

function hasContents(contents: InferTensorContentsMessage): boolean {
  return CONTENTS_FIELDS.some((field) => (contents[field]?.length ?? 0) > 0);
}

function decodeTyped(name: string, datatype: Datatype, contents: InferTensorContentsMessage | undefined): TensorData {
  const field = CONTENTS_FIELD_OF[datatype];
  if (field === undefined) {
    throw invalidData(`input '${name}' is ${datatype}, which has no typed contents field: send it in raw_input_contents`);
  }
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
