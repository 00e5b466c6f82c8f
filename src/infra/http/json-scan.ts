import { DomainError } from '../../domain/shared/domain-error.js';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const ZERO = 0x30;
const NINE = 0x39;
const DOT = 0x2e;
const PLUS = 0x2b;
const MINUS = 0x2d;
const LOWER_E = 0x65;
const UPPER_E = 0x45;
/** The first letters of NaN and Infinity: no JSON token outside a string holds an upper-case letter. */
const UPPER_N = 0x4e;
const UPPER_I = 0x49;
/** 10^15 < 2^53 < 10^16: an integer written with fewer digits is exact as a double. */
const EXACT_DIGITS = 15;

/** What one pass over a JSON text found, besides its nesting being within the limit. */
export interface JsonScan {
  /**
   * The text holds a bare `NaN`/`Infinity` (not JSON, but what rapidjson writes), or an integer
   * of 16 digits or more (which a double may round): JSON.parse cannot read it as sent.
   */
  readonly needsExactParse: boolean;
}

/**
 * One pass over a JSON text, before anything parses it, skipping strings:
 * - refuses a text that nests arrays and objects deeper than `maxDepth`: a parser's recursion (and
 *   the code walking its result) is bounded by the depth, and a few kilobytes of `[` would
 *   otherwise cost a stack overflow or a long walk;
 * - tells whether JSON.parse could read it as sent ({@link JsonScan.needsExactParse}), so that the
 *   common body takes the native parser and only the rare one a slower exact parse.
 * A malformed text is left for the parser to refuse.
 */
export function scanJson(json: Uint8Array, maxDepth: number): JsonScan {
  let depth = 0;
  let inString = false;
  let digits = 0;
  let needsExactParse = false;
  for (let i = 0; i < json.length; i++) {
    const byte = json[i];
    if (inString) {
      if (byte === BACKSLASH) i++;
      else if (byte === QUOTE) inString = false;
    } else if (byte >= ZERO && byte <= NINE) {
      // Only the integer part of a number counts: a fraction or an exponent makes a float anyway.
      if (++digits === EXACT_DIGITS + 1 && startsInteger(json, i - EXACT_DIGITS)) needsExactParse = true;
    } else {
      digits = 0;
      if (byte === QUOTE) {
        inString = true;
      } else if (byte === OPEN_BRACKET || byte === OPEN_BRACE) {
        if (++depth > maxDepth) {
          throw new DomainError('INFERENCE.INVALID_REQUEST', `the JSON nests arrays and objects deeper than MAX_JSON_DEPTH (${maxDepth} levels) at byte ${i}`);
        }
      } else if (byte === CLOSE_BRACKET || byte === CLOSE_BRACE) {
        depth--;
      } else if (byte === UPPER_N || byte === UPPER_I) {
        needsExactParse = true;
      }
    }
  }
  return { needsExactParse };
}

/** Refuses a JSON text nested deeper than `maxDepth` (see {@link scanJson}). */
export function assertJsonDepthWithin(json: Uint8Array, maxDepth: number): void {
  scanJson(json, maxDepth);
}

/** Whether the run of digits starting at `start` is the integer part of a number (not its fraction or exponent). */
function startsInteger(json: Uint8Array, start: number): boolean {
  const before = start > 0 ? json[start - 1] : undefined;
  if (before === DOT || before === PLUS || before === LOWER_E || before === UPPER_E) return false;
  if (before === MINUS) {
    const sign = start > 1 ? json[start - 2] : undefined;
    return sign !== LOWER_E && sign !== UPPER_E;
  }
  return true;
}
