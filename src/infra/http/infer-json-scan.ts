import { tooDeep } from './json-depth.js';

/**
 * One pass over the raw bytes of an infer request's JSON that finds the `data` array of each input
 * (`inputs[i].data`) and counts its elements, without parsing them. What is left, the envelope
 * (names, datatypes, shapes, parameters, outputs) with every such `data` as `[]`, is small and
 * parses at once; the request is judged on it against the model, and only a request worth
 * computing has its data parsed. So a 50 MB body of millions of numbers for the wrong shape costs
 * this scan (a few ms per MB, in slices that let other requests run between them), not a parse and
 * a decode of every element on the main thread.
 *
 * Also refuses nesting deeper than MAX_JSON_DEPTH, as json-depth.ts does for other bodies. A
 * malformed text is left for JSON.parse to refuse (of the envelope, or of a data array).
 */

/** Where an input's `data` array lies in the body, and how many elements (scalars, at any nesting) it holds. */
export interface DataSpan {
  readonly start: number;
  readonly end: number;
  readonly elements: number;
}

export interface ScannedInferJson {
  /** The JSON text with each input's `data` replaced by `[]`. */
  readonly envelope: string;
  /** By input index (in the last `inputs` array, as JSON.parse keeps the last of duplicate keys). */
  readonly data: ReadonlyMap<number, DataSpan>;
}

/** The most bytes of JSON a request may have outside its inputs' `data` (names, shapes, parameters...). */
const MAX_ENVELOPE_BYTES = 1024 * 1024;

/** Bytes scanned between two turns of the event loop (scanInferJsonYielding). */
const SLICE_BYTES = 1024 * 1024;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

/** What a byte is to the scan inside a data array. */
const IGNORED = 0;
const SCALAR = 1;
const SEPARATOR = 2;
const STRING = 3;
const OPEN = 4;
const CLOSE = 5;
const KIND = new Uint8Array(256).fill(SCALAR);
for (const byte of [0x20, 0x09, 0x0a, 0x0d, COLON]) KIND[byte] = IGNORED;
KIND[COMMA] = SEPARATOR;
KIND[QUOTE] = STRING;
KIND[OPEN_BRACKET] = OPEN;
KIND[OPEN_BRACE] = OPEN;
KIND[CLOSE_BRACKET] = CLOSE;
KIND[CLOSE_BRACE] = CLOSE;

const enum Role {
  Root,
  Inputs,
  Input,
  Other,
}

interface Frame {
  readonly object: boolean;
  readonly role: Role;
  /** Objects: the last key read, and whether a key comes next. */
  key?: string;
  expectKey: boolean;
  /** The `inputs` array: the input objects opened in it so far. */
  inputs: number;
  /** An input object: its index in the `inputs` array. */
  readonly index: number;
}

/** Scans the whole body at once. */
export function scanInferJson(bytes: Buffer, maxDepth: number): ScannedInferJson {
  const scan = new InferJsonScan(bytes, maxDepth);
  scan.step(bytes.length);
  return scan.result();
}

/** Scans the body in slices, giving the event loop a turn between two (a large body never holds it long). */
export async function scanInferJsonYielding(bytes: Buffer, maxDepth: number): Promise<ScannedInferJson> {
  const scan = new InferJsonScan(bytes, maxDepth);
  for (let until = SLICE_BYTES; until < bytes.length; until += SLICE_BYTES) {
    scan.step(until);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  scan.step(bytes.length);
  return scan.result();
}

/**
 * The scan's state, so that it can stop at any byte and go on. Outside a `data` array it follows
 * the structure (frames, keys); inside one it only counts value starts and nesting.
 */
class InferJsonScan {
  private i = 0;
  private readonly stack: Frame[] = [];
  private spans = new Map<number, DataSpan>();
  /** Every data array found (of any `inputs` array): what the envelope leaves out. */
  private readonly elided: { start: number; end: number }[] = [];
  /** Inside a data array: its start, its input, its open containers (true: array), whether a value comes next, elements so far. */
  private data?: { start: number; input: number; containers: boolean[]; expectValue: boolean; elements: number };

  constructor(
    private readonly bytes: Buffer,
    private readonly maxDepth: number,
  ) {}

  step(until: number): void {
    const bytes = this.bytes;
    until = Math.min(until, bytes.length);
    while (this.i < until) {
      if (this.data) {
        this.i = this.stepInData(this.i, until);
        continue;
      }
      const byte = bytes[this.i];
      const top = this.stack[this.stack.length - 1];
      if (byte === QUOTE) {
        const end = stringEnd(this.bytes, this.i);
        if (top?.object && top.expectKey) {
          top.key = this.keyOf(this.i, end);
          top.expectKey = false;
        }
        this.i = end;
        continue;
      }
      if (byte === OPEN_BRACE || byte === OPEN_BRACKET) {
        this.open(byte === OPEN_BRACE, top);
      } else if (byte === CLOSE_BRACE || byte === CLOSE_BRACKET) {
        this.stack.pop();
      } else if (byte === COMMA) {
        if (top?.object) top.expectKey = true;
      } else if (byte === COLON && top?.object) {
        top.expectKey = false;
      }
      this.i++;
    }
  }

  result(): ScannedInferJson {
    // A body that ends inside a string, an array or an object is not JSON (JSON.parse would say so, at the cost of parsing it).
    if (this.data || this.stack.length > 0) throw new SyntaxError('the JSON text ends before its last array or object closes');
    const parts: Buffer[] = [];
    let from = 0;
    for (const { start, end } of this.elided) {
      parts.push(this.bytes.subarray(from, start), EMPTY_ARRAY);
      from = end;
    }
    parts.push(this.bytes.subarray(from));
    const envelope = Buffer.concat(parts);
    if (envelope.length > MAX_ENVELOPE_BYTES) {
      throw new EnvelopeTooLargeError(`the request's JSON outside its inputs' "data" is ${envelope.length} bytes, more than ${MAX_ENVELOPE_BYTES}`);
    }
    return { envelope: envelope.toString('utf8'), data: this.spans };
  }

  private open(object: boolean, parent: Frame | undefined): void {
    if (this.stack.length + 1 > this.maxDepth) throw tooDeep(this.maxDepth, this.i);
    let role = Role.Other;
    if (!parent) role = object ? Role.Root : Role.Other;
    else if (parent.role === Role.Root && parent.key === 'inputs' && !object) role = Role.Inputs;
    else if (parent.role === Role.Inputs && object) role = Role.Input;
    if (parent?.role === Role.Input && parent.key === 'data' && !object) {
      this.data = { start: this.i, input: parent.index, containers: [true], expectValue: true, elements: 0 };
      return;
    }
    if (role === Role.Inputs) this.spans = new Map(); // a later "inputs" replaces an earlier one
    const index = role === Role.Input ? parent!.inputs++ : -1;
    this.stack.push({ object, role, expectKey: object, inputs: 0, index });
  }

  /** Scans inside a data array from `i`; returns where it stopped (`until`, or past the array's end). */
  private stepInData(from: number, until: number): number {
    const data = this.data!;
    const bytes = this.bytes;
    const containers = data.containers;
    let expectValue = data.expectValue;
    let elements = data.elements;
    // Whether the innermost open container is an array (elements are counted in arrays only).
    let inArray = containers[containers.length - 1]!;
    // Locals: the module's constants would cost a check each in this loop.
    const kinds = KIND;
    const [scalar, separator, string, open, close] = [SCALAR, SEPARATOR, STRING, OPEN, CLOSE];
    let i = from;
    for (; i < until; i++) {
      const kind = kinds[bytes[i]!];
      // The bulk of a body: the bytes of numbers, and the commas between them.
      if (kind === scalar) {
        // The first byte of a number, true, false or null: one element.
        if (expectValue) {
          if (inArray) elements++;
          expectValue = false;
        }
      } else if (kind === separator) {
        expectValue = inArray;
      } else if (kind === string) {
        if (expectValue && inArray) elements++;
        expectValue = false;
        i = stringEnd(bytes, i) - 1;
      } else if (kind === open) {
        if (this.stack.length + containers.length + 1 > this.maxDepth) throw tooDeep(this.maxDepth, i);
        const array = bytes[i] === OPEN_BRACKET;
        // An object is one element (a wrong one, refused when decoded); an array only holds elements.
        if (!array && expectValue && inArray) elements++;
        containers.push(array);
        inArray = array;
        expectValue = array;
      } else if (kind === close) {
        containers.pop();
        expectValue = false;
        if (containers.length === 0) {
          const end = i + 1;
          this.spans.set(data.input, { start: data.start, end, elements });
          this.elided.push({ start: data.start, end });
          this.data = undefined;
          return end;
        }
        inArray = containers[containers.length - 1]!;
      }
    }
    data.expectValue = expectValue;
    data.elements = elements;
    return i;
  }

  /** A key's text; escaped keys (`"d\u0061ta"`) read as JSON.parse reads them. */
  private keyOf(start: number, end: number): string | undefined {
    const raw = this.bytes.subarray(start, end);
    if (!raw.includes(BACKSLASH)) return raw.toString('utf8', 1, raw.length - 1);
    try {
      return JSON.parse(raw.toString('utf8')) as string;
    } catch {
      return undefined; // malformed: JSON.parse refuses the envelope
    }
  }
}

const EMPTY_ARRAY = Buffer.from('[]');

/** The index just past the string that opens at `start` (the body's end when it does not close). */
function stringEnd(bytes: Buffer, start: number): number {
  const length = bytes.length;
  for (let i = start + 1; i < length; i++) {
    const byte = bytes[i];
    if (byte === QUOTE) return i + 1;
    if (byte === BACKSLASH) i++;
  }
  return length;
}

/** A request whose JSON outside the tensors' data is larger than MAX_ENVELOPE_BYTES. */
export class EnvelopeTooLargeError extends Error {}
