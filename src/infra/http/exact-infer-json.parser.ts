/**
 * Reads the JSON of an inference request as its client wrote it, where JSON.parse cannot:
 * - in the `data` of an input, an integer beyond 2^53 (INT64/UINT64 as tritonclient writes them:
 *   exact digits, never strings) is read as a bigint, every digit kept;
 * - in the `data` of an FP16/FP32/FP64 input, the bare tokens `NaN`, `Infinity` and `-Infinity`
 *   (what rapidjson, and so tritonclient, writes for those values) are read as the numbers.
 * Everywhere else the text is read exactly as JSON.parse reads it (a long integer becomes the
 * nearest double) and the bare tokens stay invalid JSON.
 *
 * Why a parser of our own: JSON.parse (Node 20) gives a reviver neither the source text of a number
 * nor a way to accept NaN; the maintained lossless parsers (lossless-json, json-bigint) accept no
 * NaN, and a parser that does (JSON5) rounds integers and accepts much more than JSON. This one is
 * only called for the texts JSON.parse refuses or reads with lost digits (json-body.ts): the common
 * body takes JSON.parse alone. Its recursion is bounded by MAX_JSON_DEPTH, checked before.
 */

/** Where a value sits in the request: what decides how its numbers are read. */
type Place =
  | 'root'
  /** The value of the root's `inputs`. */
  | 'inputs'
  /** An element of `inputs`. */
  | 'input'
  /** The `data` of an input, or anything nested in it. */
  | 'data'
  | 'other';

const FLOAT_DATATYPES = new Set(['FP16', 'FP32', 'FP64']);
const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
const SPECIAL_NUMBERS: readonly [string, number][] = [
  ['NaN', NaN],
  ['Infinity', Infinity],
  ['-Infinity', -Infinity],
];

/** Parses a JSON text as described above; throws a SyntaxError naming the position of what is wrong. */
export function parseInferJsonExactly(text: string): unknown {
  return new ExactJsonReader(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text).document();
}

class ExactJsonReader {
  private pos = 0;
  /** Where the current input's `data` first holds a bare NaN or infinity, or -1. */
  private specialAt = -1;

  constructor(private readonly text: string) {}

  document(): unknown {
    const value = this.value('root');
    this.skipWhitespace();
    if (this.pos < this.text.length) this.unexpected();
    return value;
  }

  private value(place: Place): unknown {
    this.skipWhitespace();
    switch (this.text[this.pos]) {
      case '{':
        return place === 'input' ? this.input() : this.object(place);
      case '[':
        return this.array(place);
      case '"':
        return this.string();
      case 't':
        return this.literal('true', true);
      case 'f':
        return this.literal('false', false);
      case 'n':
        return this.literal('null', null);
      default:
        return this.number(place);
    }
  }

  private object(place: Place): Record<string, unknown> {
    const object: Record<string, unknown> = {};
    this.pos++; // {
    this.skipWhitespace();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return object;
    }
    for (;;) {
      this.skipWhitespace();
      if (this.text[this.pos] !== '"') this.unexpected('a string (an object key)');
      const key = this.string();
      this.skipWhitespace();
      if (this.text[this.pos] !== ':') this.unexpected("':'");
      this.pos++;
      const value = this.value(memberPlace(place, key));
      // An own property, as JSON.parse makes it: the prototype check (secure-json-parse) then sees it.
      if (key === '__proto__') Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
      else object[key] = value;
      this.skipWhitespace();
      const next = this.text[this.pos++];
      if (next === '}') return object;
      if (next !== ',') this.unexpected("',' or '}'", this.pos - 1);
    }
  }

  /** An element of `inputs`: bare NaN and infinities in its `data` only if its datatype is a float. */
  private input(): Record<string, unknown> {
    const outer = this.specialAt;
    this.specialAt = -1;
    const input = this.object('input');
    if (this.specialAt >= 0 && !FLOAT_DATATYPES.has(input.datatype as string)) {
      throw new SyntaxError(
        `${this.tokenAt(this.specialAt)} at position ${this.specialAt} is not JSON: the bare tokens NaN, Infinity and -Infinity are accepted only in the data of an FP16, FP32 or FP64 input`,
      );
    }
    this.specialAt = outer;
    return input;
  }

  private array(place: Place): unknown[] {
    const array: unknown[] = [];
    const elementPlace = place === 'inputs' ? 'input' : place === 'data' ? 'data' : 'other';
    this.pos++; // [
    this.skipWhitespace();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return array;
    }
    for (;;) {
      array.push(this.value(elementPlace));
      this.skipWhitespace();
      const next = this.text[this.pos++];
      if (next === ']') return array;
      if (next !== ',') this.unexpected("',' or ']'", this.pos - 1);
    }
  }

  private string(): string {
    const start = this.pos;
    let end = start + 1;
    for (;;) {
      const c = this.text.charCodeAt(end);
      if (Number.isNaN(c)) this.unexpected('the end of a string', this.text.length);
      if (c === 0x22) break;
      end += c === 0x5c ? 2 : 1;
    }
    this.pos = end + 1;
    try {
      // The string's own text, escapes and all: JSON.parse decodes it and refuses what JSON refuses.
      return JSON.parse(this.text.slice(start, this.pos)) as string;
    } catch {
      throw new SyntaxError(`invalid string at position ${start} (a control character or a bad escape)`);
    }
  }

  private literal<T>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.pos)) this.unexpected();
    this.pos += word.length;
    return value;
  }

  private number(place: Place): number | bigint {
    const first = this.text[this.pos];
    const special = (first === 'N' || first === 'I' || (first === '-' && this.text[this.pos + 1] === 'I')) && SPECIAL_NUMBERS.find(([token]) => this.text.startsWith(token, this.pos));
    if (special) {
      if (place !== 'data') {
        throw new SyntaxError(
          `${special[0]} at position ${this.pos} is not JSON: the bare tokens NaN, Infinity and -Infinity are accepted only in the data of an FP16, FP32 or FP64 input`,
        );
      }
      if (this.specialAt < 0) this.specialAt = this.pos;
      this.pos += special[0].length;
      return special[1];
    }
    NUMBER.lastIndex = this.pos;
    const match = NUMBER.exec(this.text);
    if (!match) this.unexpected();
    this.pos = NUMBER.lastIndex;
    const value = Number(match[0]);
    // An integer written as one, past what a double holds exactly: its digits, as a bigint.
    if (place === 'data' && match[1] === undefined && match[2] === undefined && !Number.isSafeInteger(value)) return BigInt(match[0]);
    return value;
  }

  private skipWhitespace(): void {
    for (;;) {
      const c = this.text.charCodeAt(this.pos);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return;
      this.pos++;
    }
  }

  private tokenAt(pos: number): string {
    return SPECIAL_NUMBERS.find(([token]) => this.text.startsWith(token, pos))?.[0] ?? this.text.slice(pos, pos + 9);
  }

  private unexpected(expected?: string, at = this.pos): never {
    const found = at >= this.text.length ? 'end of the text' : `'${this.text[at]}'`;
    throw new SyntaxError(`unexpected ${found} at position ${at}${expected ? `, expected ${expected}` : ''}`);
  }
}

function memberPlace(place: Place, key: string): Place {
  if (place === 'root' && key === 'inputs') return 'inputs';
  if (place === 'input' && key === 'data') return 'data';
  return 'other';
}
