import type { Datatype, TensorData } from '../../domain/shared/datatype.js';
import { DomainError } from '../../domain/shared/domain-error.js';
import type { InferenceRequest, InferenceResponse, ParameterValue } from '../../domain/inference/inference-request.js';
import type { Tensor } from '../../domain/inference/tensor.js';
import type { RegionSlice, SystemSharedMemory } from '../../domain/shared-memory/system-shared-memory.js';
import { isDatatype } from '../../domain/shared/datatype.js';
import type { InputHeader } from '../../domain/inference/inference-request.js';
import { decodeRawTensor, encodeRawTensor, rawElementCount } from '../transport/raw-tensor.codec.js';
import { HTTP_INPUT_PARAMETERS, HTTP_OUTPUT_PARAMETERS, REQUEST_PARAMETERS, refuseUnknownParameters, sharedMemorySliceOf } from '../transport/tensor-parameters.js';
import { parseInferJsonExactly } from './exact-infer-json.parser.js';
import { EnvelopeTooLargeError, scanInferJson, scanInferJsonYielding, type DataSpan, type ScannedInferJson } from './infer-json-scan.js';
import { DigitsLost, encodeInferResponse, parseInferRequestJson, refusingLostDigits, toInferenceRequest, type InferRequestJson, type InputJson } from './tensor-json.codec.js';

/**
 * Triton's binary tensor data extension over HTTP (`extension_binary_data.md`). A body is a JSON
 * header of `Inference-Header-Content-Length` bytes followed by the raw bytes of the inputs whose
 * parameter `binary_data_size` is set, in input order (layout: raw-tensor.codec.ts). An answer
 * carries the outputs asked for as binary (`binary_data: true` on the output, or the request's
 * `binary_data_output: true`) after its JSON header the same way. Requests without binary data are
 * plain JSON and are answered as such.
 */
export const INFERENCE_HEADER_CONTENT_LENGTH = 'inference-header-content-length';

export interface DecodedHttpInferRequest {
  readonly request: InferenceRequest;
  /** Whether an output is answered as binary data. */
  readonly binaryOutput: (name: string) => boolean;
  /** The outputs to write into shared memory (Triton's shared memory extension), by name. */
  readonly sharedMemoryOutputs: ReadonlyMap<string, RegionSlice>;
}

/** Reads an input's bytes from a registered shared memory region (the port's `read`). */
export type SharedMemoryReader = Pick<SystemSharedMemory, 'read'>;

export interface EncodedHttpInferResponse {
  readonly body: string | Buffer;
  readonly contentType: 'application/json' | 'application/octet-stream';
  /** The length of the JSON header, when binary data follows it. */
  readonly jsonLength?: number;
}

/**
 * An infer request from its body: JSON Fastify already parsed, or bytes. Bytes are split by the
 * `Inference-Header-Content-Length` header (`headerValue`); without it they are all JSON. Inputs
 * naming a shared memory region are read from it through `sharedMemory`. Parameters this server
 * does not act on are refused (tensor-parameters.ts).
 */
export function decodeHttpInferRequest(
  body: unknown,
  headerValue: string | string[] | undefined,
  maxJsonDepth: number,
  sharedMemory?: SharedMemoryReader,
): DecodedHttpInferRequest {
  return readHttpInferRequest(body, headerValue, maxJsonDepth).decode(sharedMemory);
}

/**
 * An infer request read up to its elements: everything but them is checked (JSON, parameters,
 * binary data sizes, shared memory slices), and `inputs` say what each input declares and, where
 * the body tells without decoding, how many elements it carries, for the request to be judged
 * against the model before `decode` parses and converts a single element.
 */
export interface HttpInferEnvelope {
  readonly inputs: readonly InputHeader[];
  readonly requestedOutputs: readonly string[];
  decode(sharedMemory?: SharedMemoryReader): DecodedHttpInferRequest;
}

/** Reads a request up to its elements, scanning a JSON body at once (see {@link readHttpInferRequestYielding}). */
function readHttpInferRequest(body: unknown, headerValue: string | string[] | undefined, maxJsonDepth: number): HttpInferEnvelope {
  if (!Buffer.isBuffer(body)) return envelopeOf(parsedAlready(body), undefined, Buffer.alloc(0));
  const { json, binary, announced } = splitBody(body, headerValue);
  if (json.length === 0 && !announced) return envelopeOf(parsedAlready(undefined), json, binary); // an empty body: refused as one
  return envelopeOf(parseScanned(json, announced, () => scanInferJson(json, maxJsonDepth)), json, binary);
}

/**
 * {@link readHttpInferRequest} for the server: the JSON is scanned in slices with a turn of the
 * event loop between two, so a large body never holds other requests (and the health probes) for
 * long; a request refused on its envelope never has its elements parsed.
 */
export async function readHttpInferRequestYielding(body: unknown, headerValue: string | string[] | undefined, maxJsonDepth: number): Promise<HttpInferEnvelope> {
  if (!Buffer.isBuffer(body)) return envelopeOf(parsedAlready(body), undefined, Buffer.alloc(0));
  const { json, binary, announced } = splitBody(body, headerValue);
  if (json.length === 0 && !announced) return envelopeOf(parsedAlready(undefined), json, binary);
  let scanned: ScannedInferJson;
  try {
    scanned = await scanInferJsonYielding(json, maxJsonDepth);
  } catch (error) {
    throw scanError(error, json.length, announced);
  }
  return envelopeOf(parseScanned(json, announced, () => scanned), json, binary);
}

function splitBody(body: Buffer, headerValue: string | string[] | undefined): { json: Buffer; binary: Buffer; announced: boolean } {
  const jsonLength = jsonHeaderLength(headerValue, body.length);
  return { json: body.subarray(0, jsonLength), binary: body.subarray(jsonLength), announced: headerValue !== undefined };
}

/** The body's JSON as parsed with every input's `data` left out (`[]`), and where those data lie. */
interface ParsedEnvelope {
  readonly json: unknown;
  readonly data: ReadonlyMap<number, DataSpan>;
}

/** A body parsed before it came here (or none): its `data` are in it. */
function parsedAlready(json: unknown): ParsedEnvelope {
  return { json, data: new Map() };
}

function parseScanned(json: Buffer, announced: boolean, scan: () => ScannedInferJson): ParsedEnvelope {
  let scanned: ScannedInferJson;
  try {
    scanned = scan();
  } catch (error) {
    throw scanError(error, json.length, announced);
  }
  try {
    return { json: JSON.parse(scanned.envelope), data: scanned.data };
  } catch (error) {
    const bareToken = /(^|[^\w"])-?(NaN|Infinity)\b/.test(scanned.envelope);
    throw notJson(json.length, announced, bareToken ? 'the bare tokens NaN, Infinity and -Infinity are accepted only in the data of an FP16, FP32 or FP64 input' : (error as Error).message);
  }
}

function scanError(error: unknown, length: number, announced: boolean): Error {
  if (error instanceof EnvelopeTooLargeError) return invalidRequest(error.message);
  if (error instanceof SyntaxError) return notJson(length, announced);
  return error as Error;
}

function envelopeOf(scanned: ParsedEnvelope, jsonBytes: Buffer | undefined, binary: Buffer): HttpInferEnvelope {
  const parsed = parseInferRequestJson(scanned.json);
  refuseUnknownParameters(parsed.parameters, REQUEST_PARAMETERS, 'the request');
  const section = new BinaryTensorSection(binary);
  const sources = parsed.inputs.map((input, index): InputSource => {
    refuseUnknownParameters(input.parameters, HTTP_INPUT_PARAMETERS, `input '${input.name}'`);
    const slice = sharedMemorySlice(input);
    if (slice) return { kind: 'shared-memory', slice };
    const bytes = section.take(input);
    if (bytes) return { kind: 'binary', bytes };
    const span = scanned.data.get(index);
    return span ? { kind: 'json-span', span } : { kind: 'json' };
  });
  section.assertAllRead();
  const sharedMemoryOutputs = sharedMemoryOutputsOf(parsed);
  const allOutputs = booleanParameter(parsed.parameters, 'binary_data_output', 'the request') ?? false;
  const binaryOutputs = new Map((parsed.outputs ?? []).map((output) => [output.name, booleanParameter(output.parameters, 'binary_data', `output '${output.name}'`)]));
  const binaryOutput = (name: string) => !sharedMemoryOutputs.has(name) && (binaryOutputs.get(name) ?? allOutputs);
  return {
    inputs: parsed.inputs.map((input, index) => ({ name: input.name, datatype: input.datatype, shape: input.shape, elementCount: elementCountOf(input, sources[index]!) })),
    requestedOutputs: parsed.outputs?.map((output) => output.name) ?? [],
    decode: (sharedMemory) => {
      // An integer past 2^53 in the data of a narrower integer type is refused quoting its digits:
      // the decoder notices the lost digits (DigitsLost) and the spans are read again keeping them.
      const decodeWith = (keepDigits: boolean) => {
        const withData = parsed.inputs.map((input, index) => {
          const source = sources[index]!;
          return source.kind === 'json-span' ? { ...input, data: parseDataSpan(jsonBytes!, source.span, input.name, input.datatype, keepDigits) } : input;
        });
        return toInferenceRequest({ ...parsed, inputs: withData }, (input, datatype) => {
          const source = sources[withData.indexOf(input)]!;
          if (source.kind === 'shared-memory') return readSharedMemoryInput(input, datatype, source.slice, sharedMemory);
          if (source.kind === 'binary') return decodeRawTensor(input.name, datatype, input.shape, source.bytes, 'its binary data (binary_data_size)', { owned: true });
          return undefined;
        });
      };
      let request: InferenceRequest;
      try {
        request = decodeWith(false);
      } catch (error) {
        if (!(error instanceof DigitsLost)) throw error;
        request = refusingLostDigits(() => decodeWith(true));
      }
      return { request, binaryOutput, sharedMemoryOutputs };
    },
  };
}

/** Where an input's elements are: a shared memory slice, binary data after the JSON, a scanned `data` array, or `data` as parsed. */
type InputSource =
  | { readonly kind: 'shared-memory'; readonly slice: RegionSlice }
  | { readonly kind: 'binary'; readonly bytes: Buffer }
  | { readonly kind: 'json-span'; readonly span: DataSpan }
  | { readonly kind: 'json' };

/**
 * How many elements an input carries, when that is known without decoding them. Binary data of the
 * wrong byte count is refused here. A shared memory slice is not counted: its bytes are only read
 * (within MAX_REQUEST_BYTES) when the request is decoded.
 */
function elementCountOf(input: InputJson, source: InputSource): number | undefined {
  if (source.kind === 'json-span') return source.span.elements;
  if (source.kind === 'json') return input.data !== undefined && !input.data.some(Array.isArray) ? input.data.length : undefined;
  if (source.kind === 'binary' && isDatatype(input.datatype)) return rawElementCount(input.name, input.datatype, input.shape, source.bytes, 'its binary data (binary_data_size)');
  return undefined;
}

/**
 * One input's scanned `data`, parsed as tritonclient writes it (rapidjson): JSON.parse, with every
 * digit of an INT64/UINT64 integer past 2^53 kept (a bigint, from the number's source text, which
 * JSON.parse's reviver gives on Node 22+), and, for FP16/FP32/FP64 only, the bare tokens NaN,
 * Infinity and -Infinity read by the exact parser (exact-infer-json.parser.ts) when JSON.parse
 * refuses the text. Anywhere else those tokens stay invalid JSON.
 */
function parseDataSpan(json: Buffer, span: DataSpan, name: string, datatype: string, keepDigits = false): unknown[] {
  const text = json.toString('utf8', span.start, span.end);
  try {
    return (keepDigits || datatype === 'INT64' || datatype === 'UINT64' ? JSON.parse(text, keepIntegerDigits) : JSON.parse(text)) as unknown[];
  } catch (error) {
    if (FLOAT_DATATYPES.has(datatype)) {
      try {
        const document = parseInferJsonExactly(`{"inputs":[{"datatype":${JSON.stringify(datatype)},"data":${text}}]}`) as { inputs: [{ data: unknown[] }] };
        return document.inputs[0].data;
      } catch (exactError) {
        error = exactError;
      }
    } else if (/(^|[^\w"])-?(NaN|Infinity)\b/.test(text)) {
      error = new SyntaxError('the bare tokens NaN, Infinity and -Infinity are accepted only in the data of an FP16, FP32 or FP64 input');
    }
    throw invalidRequest(`input '${name}': its "data" (bytes ${span.start} to ${span.end} of the body) is not valid JSON: ${(error as Error).message}`);
  }
}

const FLOAT_DATATYPES = new Set(['FP16', 'FP32', 'FP64']);

/** A JSON.parse reviver: an integer past 2^53 written as digits becomes a bigint of those digits. */
function keepIntegerDigits(_key: string, value: unknown, context?: { readonly source?: string }): unknown {
  if (typeof value !== 'number' || Number.isSafeInteger(value) || !Number.isInteger(value)) return value;
  const source = context?.source;
  return source !== undefined && /^-?\d+$/.test(source) ? BigInt(source) : value;
}

/**
 * The answer: plain JSON, or a JSON header followed by the bytes of the outputs answered as binary
 * data. Outputs written to shared memory (`inSharedMemory`) carry no data.
 */
export function encodeHttpInferResponse(
  response: InferenceResponse,
  binaryOutput: (name: string) => boolean,
  inSharedMemory: (name: string) => boolean = () => false,
): EncodedHttpInferResponse {
  const raw = new Map<Tensor, Buffer>(response.outputs.filter((output) => binaryOutput(output.name)).map((output) => [output, encodeRawTensor(output)]));
  const json = encodeInferResponse(response, (output) => raw.get(output)?.length, (output) => inSharedMemory(output.name));
  if (raw.size === 0) return { body: json, contentType: 'application/json' };
  const header = Buffer.from(json, 'utf8');
  return { body: Buffer.concat([header, ...raw.values()]), contentType: 'application/octet-stream', jsonLength: header.length };
}

/** The shared memory slice an input's parameters name, checked; undefined when they name none. */
function sharedMemorySlice(input: InputJson): RegionSlice | undefined {
  const owner = `input '${input.name}'`;
  const slice = sharedMemorySliceOf(input.parameters, owner);
  if (!slice) return undefined;
  if (input.data !== undefined || input.parameters?.binary_data_size !== undefined) {
    throw invalidRequest(`${owner} names shared memory region '${slice.region}' and also has ${input.data !== undefined ? '"data"' : 'binary_data_size'}: send its elements one way`);
  }
  return slice;
}

/** An input's elements from the shared memory slice its parameters name. */
function readSharedMemoryInput(input: InputJson, datatype: Datatype, slice: RegionSlice, sharedMemory: SharedMemoryReader | undefined): TensorData {
  if (!sharedMemory) throw invalidRequest(`input '${input.name}': shared memory is not available here`);
  const bytes = sharedMemory.read(slice, input.name);
  return decodeRawTensor(input.name, datatype, input.shape, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), `its slice of shared memory region '${slice.region}' (shared_memory_byte_size)`);
}

/** The requested outputs to write into shared memory; such an output cannot also be binary data or a classification. */
function sharedMemoryOutputsOf(parsed: InferRequestJson): Map<string, RegionSlice> {
  const slices = new Map<string, RegionSlice>();
  for (const output of parsed.outputs ?? []) {
    const owner = `output '${output.name}'`;
    refuseUnknownParameters(output.parameters, HTTP_OUTPUT_PARAMETERS, owner);
    const slice = sharedMemorySliceOf(output.parameters, owner);
    if (!slice) continue;
    if (output.parameters?.binary_data === true) throw invalidRequest(`${owner} cannot be both in shared memory region '${slice.region}' and binary data (binary_data: true)`);
    if (output.parameters?.classification !== undefined || output.parameters?.class_count !== undefined) {
      throw invalidRequest(`${owner} cannot be both in shared memory region '${slice.region}' and a classification`);
    }
    slices.set(output.name, slice);
  }
  return slices;
}

/** The inputs' binary data after the JSON header, read in input order. */
class BinaryTensorSection {
  private offset = 0;

  constructor(private readonly bytes: Buffer) {}

  /** The bytes of an input sent as binary data (its binary_data_size), in input order; undefined for others. */
  take(input: InputJson): Buffer | undefined {
    const size = input.parameters?.binary_data_size;
    if (size === undefined) return undefined;
    const name = input.name;
    if (input.data !== undefined) throw invalidRequest(`input '${name}' has both "data" and the parameter binary_data_size: send its elements one way`);
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
      throw invalidRequest(`input '${name}': binary_data_size is ${JSON.stringify(size)}, expected a non-negative integer (bytes)`);
    }
    const remaining = this.bytes.length - this.offset;
    if (size > remaining) {
      throw invalidRequest(
        `input '${name}': binary_data_size is ${size}, but only ${remaining} bytes of binary data remain after the JSON header and the inputs before it` +
          (this.bytes.length === 0 ? ` (without the header ${INFERENCE_HEADER_CONTENT_LENGTH}, the whole body is JSON)` : ''),
      );
    }
    const bytes = this.bytes.subarray(this.offset, this.offset + size);
    this.offset += size;
    return bytes;
  }

  assertAllRead(): void {
    const left = this.bytes.length - this.offset;
    if (left > 0) {
      throw invalidRequest(`the body has ${left} bytes of binary data beyond what the inputs' binary_data_size parameters account for (${this.offset} bytes)`);
    }
  }
}

function jsonHeaderLength(headerValue: string | string[] | undefined, bodyLength: number): number {
  if (headerValue === undefined) return bodyLength;
  const text = Array.isArray(headerValue) ? headerValue.join(', ') : headerValue.trim();
  const length = /^\d{1,15}$/.test(text) ? Number(text) : NaN;
  if (Number.isNaN(length)) {
    throw invalidRequest(`header ${INFERENCE_HEADER_CONTENT_LENGTH} is ${JSON.stringify(text.slice(0, 40))}, expected the byte length of the JSON header (a non-negative integer)`);
  }
  if (length > bodyLength) throw invalidRequest(`header ${INFERENCE_HEADER_CONTENT_LENGTH} is ${length}, but the body has only ${bodyLength} bytes`);
  return length;
}

function notJson(length: number, announced: boolean, why?: string): DomainError {
  const reason = why ? `: ${why}` : '';
  return invalidRequest(
    announced
      ? `the first ${length} bytes of the body (header ${INFERENCE_HEADER_CONTENT_LENGTH}) are not a JSON document${reason}`
      : `the body is not valid JSON${reason} (with binary tensor data, the header ${INFERENCE_HEADER_CONTENT_LENGTH} gives the length of its JSON part)`,
  );
}

function booleanParameter(parameters: Readonly<Record<string, ParameterValue>> | undefined, key: string, owner: string): boolean | undefined {
  const value = parameters?.[key];
  if (value === undefined || typeof value === 'boolean') return value;
  throw invalidRequest(`${owner}: parameter ${key} is ${JSON.stringify(value)}, expected true or false`);
}

function invalidRequest(message: string): DomainError {
  return new DomainError('INFERENCE.INVALID_REQUEST', message);
}
