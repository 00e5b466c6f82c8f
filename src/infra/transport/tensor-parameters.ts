import { DomainError } from '../../domain/shared/domain-error.js';
import { GENERATION_PARAMETER_NAMES } from '../../domain/generation/generation-parameters.js';
import type { ParameterValue } from '../../domain/inference/inference-request.js';
import type { RegionSlice } from '../../domain/shared-memory/system-shared-memory.js';

/**
 * The `parameters` an inference request may carry, per place and transport: the ones this server
 * acts on. Any other is refused with a 400 / INVALID_ARGUMENT naming it, never silently ignored
 * (Triton would pass unknown request parameters to its backend; this server has no backend that
 * reads them, so a parameter it does not know would do nothing the client asked for).
 */

/** Triton's shared memory parameters of an input or a requested output. */
const SHARED_MEMORY_PARAMETERS = ['shared_memory_region', 'shared_memory_byte_size', 'shared_memory_offset'] as const;

/** Top-k classification of an output (Triton's `classification`; `class_count` is the client's name for it). */
const CLASSIFICATION_PARAMETERS = ['classification', 'class_count'] as const;

/**
 * Request-level: the queue's `priority` and `timeout`, the answer's form `binary_data_output`, and
 * a generative model's sampling parameters (refused by the inference use case for other models).
 */
export const REQUEST_PARAMETERS: readonly string[] = ['priority', 'timeout', 'binary_data_output', ...GENERATION_PARAMETER_NAMES];

export const HTTP_INPUT_PARAMETERS: readonly string[] = ['binary_data_size', ...SHARED_MEMORY_PARAMETERS];
export const HTTP_OUTPUT_PARAMETERS: readonly string[] = ['binary_data', ...CLASSIFICATION_PARAMETERS, ...SHARED_MEMORY_PARAMETERS];
/** KServe's Python client sends `binary_data_size` with every raw gRPC input: checked against its raw_input_contents entry. */
export const GRPC_INPUT_PARAMETERS: readonly string[] = ['binary_data_size', ...SHARED_MEMORY_PARAMETERS];
export const GRPC_OUTPUT_PARAMETERS: readonly string[] = [...CLASSIFICATION_PARAMETERS, ...SHARED_MEMORY_PARAMETERS];

/** Refuses a parameter outside `known`; `owner` names where it was ("the request", "input 'x'"). */
export function refuseUnknownParameters(parameters: Readonly<Record<string, unknown>> | undefined, known: readonly string[], owner: string): void {
  for (const key of Object.keys(parameters ?? {})) {
    if (!known.includes(key)) {
      throw new DomainError('INFERENCE.INVALID_REQUEST', `${owner}: parameter '${key}' is not supported (known here: ${known.join(', ')})`);
    }
  }
}

/**
 * The shared memory slice a tensor's parameters name, or undefined when they name none.
 * `shared_memory_region` and `shared_memory_byte_size` go together; `shared_memory_offset` is
 * optional (0). Byte counts are non-negative integers (gRPC's int64_param, or JSON numbers).
 */
export function sharedMemorySliceOf(parameters: Readonly<Record<string, ParameterValue>> | undefined, owner: string): RegionSlice | undefined {
  const region = parameters?.shared_memory_region;
  const byteSize = parameters?.shared_memory_byte_size;
  const offset = parameters?.shared_memory_offset;
  if (region === undefined && byteSize === undefined && offset === undefined) return undefined;
  if (region === undefined || byteSize === undefined) {
    throw invalidRequest(`${owner}: shared_memory_region and shared_memory_byte_size must be given together (shared_memory_offset is optional)`);
  }
  if (typeof region !== 'string' || region.length === 0) throw invalidRequest(`${owner}: shared_memory_region is ${JSON.stringify(region)}, expected a region name`);
  return { region, byteSize: byteCount(byteSize, 'shared_memory_byte_size', owner), offset: offset === undefined ? 0 : byteCount(offset, 'shared_memory_offset', owner) };
}

function byteCount(value: ParameterValue, name: string, owner: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw invalidRequest(`${owner}: ${name} is ${JSON.stringify(value)}, expected a non-negative integer (bytes)`);
  }
  return value;
}

function invalidRequest(message: string): DomainError {
  return new DomainError('INFERENCE.INVALID_REQUEST', message);
}
