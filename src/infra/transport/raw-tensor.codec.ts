import { endianness } from 'node:os';
import { TYPED_ARRAY_OF, type Datatype, type TensorData } from '../../domain/shared/datatype.js';
import { DomainError } from '../../domain/shared/domain-error.js';
import { shapeElementCount, type Tensor } from '../../domain/inference/tensor.js';

/**
 * Tensors as raw bytes, the form both transports share: gRPC's `raw_input_contents` /
 * `raw_output_contents` and the HTTP binary tensor data extension. Row-major, little-endian, no
 * padding; a BOOL is one byte, 0 or 1; a BYTES element is a 4-byte little-endian length followed by
 * that many bytes. BYTES elements must be UTF-8 text (onnxruntime-node's string tensors are text).
 */

// Raw bytes are copied byte for byte into typed arrays; onnxruntime-node's binaries exist only for
// little-endian hosts, so this server never runs on another.
if (endianness() !== 'LE') throw new Error('the raw tensor codec needs a little-endian host');

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The elements of input `name` from its raw bytes. `source` names where the bytes came from in the
 * client's terms (e.g. "its raw_input_contents entry"), for the message of a byte count that is wrong.
 *
 * With `owned` (the bytes belong to this request alone: its HTTP body, its gRPC message), the
 * elements are a view of the bytes when their offset is a multiple of the element size: no copy.
 * The view keeps the whole body alive while the request lives; nothing writes to a request's input
 * arrays once decoded (the scheduler's batch merge and the worker IPC copy them). Bytes that are not
 * aligned, or not the request's own (a shared memory region the client may rewrite), are copied.
 */
export function decodeRawTensor(name: string, datatype: Datatype, shape: readonly number[], bytes: Buffer, source: string, { owned = false }: { owned?: boolean } = {}): TensorData {
  if (datatype === 'BYTES') return decodeRawStrings(name, bytes);
  const ArrayType = TYPED_ARRAY_OF[datatype];
  const size = ArrayType.BYTES_PER_ELEMENT;
  rawElementCount(name, datatype, shape, bytes, source);
  const view = owned && bytes.byteOffset % size === 0;
  // A Buffer read from a socket is never backed by a SharedArrayBuffer.
  const out = view ? new ArrayType(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.length / size) : new ArrayType(bytes.length / size);
  if (!view) new Uint8Array(out.buffer).set(bytes);
  if (datatype === 'BOOL') {
    const notBool = (out as Uint8Array).findIndex((v) => v > 1);
    if (notBool >= 0) throw invalidData(`input '${name}': BOOL element ${notBool} is the byte ${out[notBool]}, expected 0 or 1`);
  }
  return out as TensorData;
}

/**
 * How many elements raw bytes hold, refusing (INVALID_DATA, naming `source`) a byte count that is
 * not the shape's: known before a single element is decoded. BYTES elements are counted by their
 * lengths (undefined when those do not add up: decoding says where).
 */
export function rawElementCount(name: string, datatype: Datatype, shape: readonly number[], bytes: Uint8Array, source: string): number | undefined {
  if (datatype === 'BYTES') return rawStringCount(bytes);
  const size = TYPED_ARRAY_OF[datatype].BYTES_PER_ELEMENT;
  const expected = rawByteLength(datatype, shape);
  if (bytes.length % size !== 0 || (expected !== undefined && bytes.length !== expected)) {
    const wanted = expected === undefined ? `a multiple of ${size}` : `${expected} (${expected / size} ${datatype} elements of ${size} bytes for shape [${shape.join(',')}])`;
    throw invalidData(`input '${name}': ${source} has ${bytes.length} bytes, expected ${wanted}`);
  }
  return bytes.length / size;
}

/**
 * How many raw bytes a tensor of this datatype and shape holds; undefined for BYTES (elements
 * have their own lengths) and for shapes whose element count is not a non-negative safe integer.
 */
function rawByteLength(datatype: Datatype, shape: readonly number[]): number | undefined {
  if (datatype === 'BYTES') return undefined;
  const count = shapeElementCount(shape);
  const bytes = count === undefined || count < 0 ? undefined : count * TYPED_ARRAY_OF[datatype].BYTES_PER_ELEMENT;
  return bytes !== undefined && Number.isSafeInteger(bytes) ? bytes : undefined;
}

/**
 * How many elements raw BYTES hold, by walking their lengths without decoding them (what a request
 * is judged on before its elements are decoded); undefined when the lengths do not add up.
 */
function rawStringCount(bytes: Uint8Array): number | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let count = 0;
  let offset = 0;
  while (offset < bytes.length) {
    if (offset + 4 > bytes.length) return undefined;
    offset += 4 + view.getUint32(offset, true);
    count++;
  }
  return offset === bytes.length ? count : undefined;
}

/** A tensor's raw bytes; numeric tensors are a view of their array, not a copy. */
export function encodeRawTensor(tensor: Tensor): Buffer {
  const data = tensor.data;
  if (!Array.isArray(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const encoded = data.map((text) => Buffer.from(text, 'utf8'));
  const out = Buffer.allocUnsafe(encoded.reduce((sum, element) => sum + 4 + element.length, 0));
  let offset = 0;
  for (const element of encoded) {
    out.writeUInt32LE(element.length, offset);
    element.copy(out, offset + 4);
    offset += 4 + element.length;
  }
  return out;
}

/** Element `index` of BYTES input `name` as text; invalid UTF-8 is refused rather than replaced. */
export function utf8TextOf(name: string, index: number, bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw invalidData(`input '${name}': BYTES element ${index} is not valid UTF-8, which the ONNX runtime's string tensors need`);
  }
}

function decodeRawStrings(name: string, bytes: Buffer): string[] {
  const elements: string[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    if (offset + 4 > bytes.length) {
      throw invalidData(`input '${name}': raw BYTES element ${elements.length} starts at byte ${offset} but only ${bytes.length - offset} bytes remain for its 4-byte length`);
    }
    const length = bytes.readUInt32LE(offset);
    offset += 4;
    if (offset + length > bytes.length) {
      throw invalidData(`input '${name}': raw BYTES element ${elements.length} says ${length} bytes, but only ${bytes.length - offset} remain`);
    }
    elements.push(utf8TextOf(name, elements.length, bytes.subarray(offset, offset + length)));
    offset += length;
  }
  return elements;
}

function invalidData(message: string): DomainError {
  return new DomainError('INFERENCE.INVALID_DATA', message);
}
