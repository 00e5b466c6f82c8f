import type { Datatype, TensorData } from '../../domain/shared/datatype.js';
import { DomainError } from '../../domain/shared/domain-error.js';
import type { InferenceRequest, InferenceResponse, ParameterValue } from '../../domain/inference/inference-request.js';
import type { Tensor } from '../../domain/inference/tensor.js';
import { decodeRawTensor, encodeRawTensor } from '../transport/raw-tensor.codec.js';
import { parseInferJson, parseInferJsonKeepingDigits } from './json-body.js';
import { DigitsLost, encodeInferResponse, parseInferRequestJson, refusingLostDigits, toInferenceRequest, type InputJson } from './tensor-json.codec.js';

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
}

export interface EncodedHttpInferResponse {
  readonly body: string | Buffer;
  readonly contentType: 'application/json' | 'application/octet-stream';
  /** The length of the JSON header, when binary data follows it. */
  readonly jsonLength?: number;
}

/**
 * An infer request from its body's bytes (or JSON already parsed). The bytes are split by the
 * `Inference-Header-Content-Length` header (`headerValue`); without it they are all JSON, read
 * as tritonclient writes it (json-body.ts: bare NaN and infinities; integers past 2^53 in `data`
 * read again keeping their digits, when decoding finds one).
 */
export function decodeHttpInferRequest(body: unknown, headerValue: string | string[] | undefined, maxJsonDepth: number): DecodedHttpInferRequest {
  if (!Buffer.isBuffer(body)) return refusingLostDigits(() => decodeJson(body, Buffer.alloc(0)));
  const jsonLength = jsonHeaderLength(headerValue, body.length);
  const jsonBytes = body.subarray(0, jsonLength);
  const binary = body.subarray(jsonLength);
  const announced = headerValue !== undefined;
  try {
    return decodeJson(parseJsonHeader(jsonBytes, announced, (bytes) => parseInferJson(bytes, maxJsonDepth)), binary);
  } catch (error) {
    if (!(error instanceof DigitsLost)) throw error;
    return refusingLostDigits(() => decodeJson(parseJsonHeader(jsonBytes, announced, parseInferJsonKeepingDigits), binary));
  }
}

function decodeJson(json: unknown, binary: Buffer): DecodedHttpInferRequest {
  const parsed = parseInferRequestJson(json);
  const section = new BinaryTensorSection(binary);
  const request = toInferenceRequest(parsed, (input, datatype) => section.read(input, datatype));
  section.assertAllRead();
  const allOutputs = booleanParameter(parsed.parameters, 'binary_data_output', 'the request') ?? false;
  const binaryOutputs = new Map((parsed.outputs ?? []).map((output) => [output.name, booleanParameter(output.parameters, 'binary_data', `output '${output.name}'`)]));
  return { request, binaryOutput: (name) => binaryOutputs.get(name) ?? allOutputs };
}

/** The answer: plain JSON, or a JSON header followed by the bytes of the outputs answered as binary data. */
export function encodeHttpInferResponse(response: InferenceResponse, binaryOutput: (name: string) => boolean): EncodedHttpInferResponse {
  const raw = new Map<Tensor, Buffer>(response.outputs.filter((output) => binaryOutput(output.name)).map((output) => [output, encodeRawTensor(output)]));
  const json = encodeInferResponse(response, (output) => raw.get(output)?.length);
  if (raw.size === 0) return { body: json, contentType: 'application/json' };
  const header = Buffer.from(json, 'utf8');
  return { body: Buffer.concat([header, ...raw.values()]), contentType: 'application/octet-stream', jsonLength: header.length };
}

/** The inputs' binary data after the JSON header, read in input order. */
class BinaryTensorSection {
  private offset = 0;

  constructor(private readonly bytes: Buffer) {}

  read(input: InputJson, datatype: Datatype): TensorData | undefined {
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
    return decodeRawTensor(name, datatype, input.shape, bytes, 'its binary data (binary_data_size)');
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

function parseJsonHeader(bytes: Buffer, announced: boolean, parse: (bytes: Buffer) => unknown): unknown {
  if (bytes.length === 0 && !announced) return undefined; // an empty body: refused as one
  try {
    return parse(bytes);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    throw invalidRequest(
      announced
        ? `the first ${bytes.length} bytes of the body (header ${INFERENCE_HEADER_CONTENT_LENGTH}) are not a JSON document: ${error.message}`
        : `the body is not valid JSON: ${error.message} (with binary tensor data, the header ${INFERENCE_HEADER_CONTENT_LENGTH} gives the length of its JSON part)`,
    );
  }
}

function booleanParameter(parameters: Readonly<Record<string, ParameterValue>> | undefined, key: string, owner: string): boolean | undefined {
  const value = parameters?.[key];
  if (value === undefined || typeof value === 'boolean') return value;
  throw invalidRequest(`${owner}: parameter ${key} is ${JSON.stringify(value)}, expected true or false`);
}

function invalidRequest(message: string): DomainError {
  return new DomainError('INFERENCE.INVALID_REQUEST', message);
}
