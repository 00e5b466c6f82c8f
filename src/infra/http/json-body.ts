import secureJson from 'secure-json-parse';
import { DomainError } from '../../domain/shared/domain-error.js';
import { parseInferJsonExactly } from './exact-infer-json.parser.js';
import { assertJsonDepthWithin } from './json-depth.js';

/** Fastify's own choice for its JSON parser: a `__proto__` key, or `constructor.prototype`, is refused. */
const PROTOTYPE_POISONING = { protoAction: 'error', constructorAction: 'error' } as const;

/**
 * A JSON request body of any route: within MAX_JSON_DEPTH (checked before it is parsed), then
 * JSON.parse with Fastify's prototype-poisoning checks (secure-json-parse). An empty body is
 * `undefined`. Anything else is a 400 naming what is wrong.
 */
export function parseJsonBody(bytes: Uint8Array, maxDepth: number): unknown {
  if (bytes.length === 0) return undefined;
  assertJsonDepthWithin(bytes, maxDepth);
  try {
    return secureJson.parse(asBuffer(bytes), PROTOTYPE_POISONING);
  } catch (error) {
    throw new DomainError('INFERENCE.INVALID_REQUEST', `the body is not valid JSON: ${(error as Error).message}`);
  }
}

/**
 * The JSON of an inference request (a body, or the JSON header of a binary one), as tritonclient
 * writes it. JSON.parse reads it, as fast as any JSON body; only a text it refuses is read again by
 * the exact parser (exact-infer-json.parser.ts), which also takes rapidjson's bare NaN, Infinity
 * and -Infinity in FP16/FP32/FP64 `data`, and refuses anything else naming the position. Integers
 * past 2^53 read this way have lost digits: the decoder notices (tensor-json.codec.ts, `DigitsLost`)
 * and the text is read again with {@link parseInferJsonKeepingDigits}. Throws a DomainError for
 * the depth, a SyntaxError for a text that is not JSON.
 */
export function parseInferJson(bytes: Uint8Array, maxDepth: number): unknown {
  assertJsonDepthWithin(bytes, maxDepth);
  const text = asBuffer(bytes);
  try {
    return secureJson.parse(text, PROTOTYPE_POISONING);
  } catch {
    return parseExactly(text);
  }
}

/**
 * The same text read by the exact parser: every integer of `data` past 2^53 a bigint with all its
 * digits. Only for a text {@link parseInferJson} has read already (its depth is checked).
 */
export function parseInferJsonKeepingDigits(bytes: Uint8Array): unknown {
  return parseExactly(asBuffer(bytes));
}

function parseExactly(text: Buffer): unknown {
  const value = parseInferJsonExactly(text.toString('utf8'));
  if (value !== null && typeof value === 'object') secureJson.scan(value, PROTOTYPE_POISONING);
  return value;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
