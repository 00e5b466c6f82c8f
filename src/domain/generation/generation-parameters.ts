import { DomainError } from '../shared/domain-error.js';
import type { SamplingParams } from './generation-engine.port.js';

/** What a client asks of one generation, whatever API it spoke (Triton's generate, OpenAI's, gRPC). */
export interface GenerationParameters {
  /** Tokens to generate at most (the sequence also ends at an end-of-sequence token, a stop string or max_model_len). */
  readonly maxTokens: number;
  readonly sampling: SamplingParams;
  /** Strings that end the sequence; the text stops before the first one found. */
  readonly stop: readonly string[];
  /** Priority level asked for (Triton's `priority`; 0 or absent: the model's default). */
  readonly priority?: number;
  /** The client's timeout in microseconds (Triton's `timeout` parameter): the longest the whole generation may take. */
  readonly timeoutMicros?: number;
  /** vLLM's `ignore_eos`: generate past end-of-sequence tokens, up to max_tokens (benchmarks, load tests). */
  readonly ignoreEos?: boolean;
}

/** The sampling parameters an inference request may carry for a generative model (besides `priority` and `timeout`). */
export const GENERATION_PARAMETER_NAMES = ['max_tokens', 'temperature', 'top_p', 'top_k', 'seed', 'stop', 'ignore_eos'] as const;

/** Bounds on what one request may ask, so that no parameter can make the server hold unbounded state. */
const GENERATION_PARAMETER_LIMITS = {
  maxStopStrings: 16,
  maxStopLength: 256,
  maxTopK: 1_000_000,
} as const;

/** What a request leaves out: decided by the use case (an API's default max_tokens, a seed drawn per request). */
export interface GenerationDefaults {
  readonly maxTokens: number;
  readonly seed: number;
}

/**
 * The generation parameters of a request, checked: the snake_case names both Triton's generate
 * extension and OpenAI's API use (`max_tokens`, `temperature`, `top_p`, `top_k`, `seed`, `stop`,
 * vLLM's `ignore_eos`, and Triton's `priority`, `timeout`). A value of the wrong type or out of range is refused with a
 * message naming it; unknown names are the caller's to refuse or ignore. `null` counts as absent,
 * as in OpenAI's API.
 */
export function generationParametersOf(raw: Readonly<Record<string, unknown>>, defaults: GenerationDefaults): GenerationParameters {
  const maxTokens = integer(raw, 'max_tokens', 1, Number.MAX_SAFE_INTEGER) ?? defaults.maxTokens;
  const temperature = number(raw, 'temperature', 0, 100) ?? 1;
  const topP = number(raw, 'top_p', 0, 1) ?? 1;
  if (raw.top_p !== undefined && raw.top_p !== null && topP === 0) throw invalid('top_p', raw.top_p, 'a number in (0, 1]');
  const topK = integer(raw, 'top_k', 0, GENERATION_PARAMETER_LIMITS.maxTopK) ?? 0;
  const seed = integer(raw, 'seed', 0, 2 ** 32 - 1) ?? defaults.seed;
  return {
    maxTokens,
    sampling: { temperature, topK, topP, seed },
    stop: stopStrings(raw.stop),
    priority: integer(raw, 'priority', 0, Number.MAX_SAFE_INTEGER),
    timeoutMicros: integer(raw, 'timeout', 0, Number.MAX_SAFE_INTEGER) || undefined,
    ignoreEos: flag(raw, 'ignore_eos'),
  };
}

function stopStrings(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  const list = typeof value === 'string' ? [value] : value;
  const { maxStopStrings, maxStopLength } = GENERATION_PARAMETER_LIMITS;
  const expected = `a string or a list of at most ${maxStopStrings} non-empty strings of at most ${maxStopLength} characters`;
  if (!Array.isArray(list) || list.length > maxStopStrings) throw invalid('stop', value, expected);
  for (const stop of list) if (typeof stop !== 'string' || stop.length === 0 || stop.length > maxStopLength) throw invalid('stop', value, expected);
  return list as string[];
}

function flag(raw: Readonly<Record<string, unknown>>, name: string): boolean | undefined {
  const value = raw[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw invalid(name, value, 'true or false');
  return value;
}

function number(raw: Readonly<Record<string, unknown>>, name: string, min: number, max: number): number | undefined {
  const value = raw[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) throw invalid(name, value, `a number from ${min} to ${max}`);
  return value;
}

function integer(raw: Readonly<Record<string, unknown>>, name: string, min: number, max: number): number | undefined {
  const value = raw[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) throw invalid(name, value, `an integer from ${min} to ${max}`);
  return value;
}

function invalid(name: string, value: unknown, expected: string): DomainError {
  const shown = JSON.stringify(value) ?? String(value);
  return new DomainError('INFERENCE.INVALID_REQUEST', `parameter '${name}' is ${shown.length > 80 ? `${shown.slice(0, 80)}...` : shown}, expected ${expected}`);
}
