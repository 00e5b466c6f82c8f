import secureJson from 'secure-json-parse';
import { DomainError } from '../../domain/shared/domain-error.js';
import { parseInferJsonExactly } from './exact-infer-json.parser.js';
import { scanJson } from './json-scan.js';

/** Fastify's own choice for its JSON parser: a `__proto__` key, or `constructor.prototype`, is refused. */
const PROTOTYPE_POISONING = { protoAction: 'error', constructorAction: 'error' } as const;

/**
 * A JSON request body of any route: within MAX_JSON_DEPTH (checked before it is parsed), then
 * JSON.parse with Fastify's prototype-poisoning checks (secure-json-parse). An empty body is
 * `undefined`. Anything else is a 400 naming what is wrong.
 */
export function parseJsonBody(bytes: Uint8Array, maxDepth: number): unknown {
  if (bytes.length === 0) return undefined;
  scanJson(bytes, maxDepth);
  try {
    return secureJson.parse(asBuffer(bytes), PROTOTYPE_POISONING);
  } catch (error) {
    throw new DomainError('INFERENCE.INVALID_REQUEST', `the body is not valid JSON: ${(error as Error).message}`);
  }
}

/**
 * The JSON of an inference request (a body, or the JSON header of a binary one), as tritonclient
 * writes it: integers beyond 2^53 in `data` read exactly, and the bare NaN/Infinity/-Infinity of
 * FP16/FP32/FP64 `data` accepted (exact-infer-json.parser.ts). The scan that checks the depth also
 * tells whether the text needs that; the common one takes JSON.parse, as fast as before. Throws a
 * DomainError for the depth, a SyntaxError for a text that is not JSON.
 */
export function parseInferJson(bytes: Uint8Array, maxDepth: number): unknown {
  const { needsExactParse } = scanJson(bytes, maxDepth);
  const text = asBuffer(bytes);
  if (!needsExactParse) return secureJson.parse(text, PROTOTYPE_POISONING);
  const value = parseInferJsonExactly(text.toString('utf8'));
  if (value !== null && typeof value === 'object') secureJson.scan(value, PROTOTYPE_POISONING);
  return value;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
