import { DomainError } from '../../domain/shared/domain-error.js';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

/**
 * Refuses a JSON text that nests arrays and objects deeper than `maxDepth`, before anything parses
 * it: a parser's recursion (and the code walking its result) is bounded by the depth, and a few
 * kilobytes of `[` would otherwise cost a stack overflow or a long walk. One pass over the bytes,
 * skipping strings; a malformed text is left for the parser to refuse.
 */
export function assertJsonDepthWithin(json: Uint8Array, maxDepth: number): void {
  if (json.length <= maxDepth) return; // too short to open more than maxDepth levels
  let depth = 0;
  let inString = false;
  for (let i = 0; i < json.length; i++) {
    const byte = json[i];
    if (inString) {
      if (byte === BACKSLASH) i++;
      else if (byte === QUOTE) inString = false;
    } else if (byte === QUOTE) {
      inString = true;
    } else if (byte === OPEN_BRACKET || byte === OPEN_BRACE) {
      if (++depth > maxDepth) {
        throw new DomainError('INFERENCE.INVALID_REQUEST', `the JSON nests arrays and objects deeper than MAX_JSON_DEPTH (${maxDepth} levels) at byte ${i}`);
      }
    } else if (byte === CLOSE_BRACKET || byte === CLOSE_BRACE) {
      depth--;
    }
  }
}
