import { randomFillSync } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { WarmupTensor } from '../../domain/inference/inference-engine.port.js';
import { shapeElementCount, type Tensor } from '../../domain/inference/tensor.js';
import { MAX_WARMUP_SAMPLE_BYTES } from '../../domain/registry/model-config.js';
import { TYPED_ARRAY_OF, type Datatype, type TensorData } from '../../domain/shared/datatype.js';

/**
 * The values of one warm-up input, built in the session worker (never on the main thread): zeros
 * (empty strings for BYTES), random bytes (BOOL: 0 or 1; BYTES: empty strings, as Triton does), or
 * a file's raw row-major data repeated for each row. A non-BYTES file must hold at least one row
 * (only its first row's bytes are read, as in Triton); a BYTES file is a sequence of elements, each
 * a 4-byte little-endian length then its bytes, exactly one row of them.
 */
export async function warmupTensor(input: WarmupTensor): Promise<Tensor> {
  const { values, datatype } = input;
  // The configuration was checked against this bound already; it is checked again where the memory is taken.
  const count = shapeElementCount(input.shape);
  if (count === undefined || count * (datatype === 'BYTES' ? 4 : TYPED_ARRAY_OF[datatype].BYTES_PER_ELEMENT) > MAX_WARMUP_SAMPLE_BYTES) {
    throw new Error(`input '${input.name}': shape [${input.shape.join(',')}] holds more than the ${MAX_WARMUP_SAMPLE_BYTES} bytes a warm-up sample may`);
  }
  const rows = Math.max(input.rows, 1);
  const rowElements = count / rows;
  let data: TensorData;
  if (values.kind === 'file') {
    data = datatype === 'BYTES' ? repeat(await readStrings(values.path, values.file, input.name, rowElements), rows) : await readRows(values.path, values.file, input.name, datatype, rowElements, rows);
  } else if (datatype === 'BYTES') {
    data = new Array<string>(count).fill('');
  } else {
    const array = new TYPED_ARRAY_OF[datatype](count);
    if (values.kind === 'random') {
      const bytes = new Uint8Array(array.buffer);
      randomFillSync(bytes);
      if (datatype === 'BOOL') for (let i = 0; i < bytes.length; i++) bytes[i] &= 1;
    }
    data = array;
  }
  return { name: input.name, datatype, shape: [...input.shape], data };
}

async function readRows(path: string, file: string, inputName: string, datatype: Exclude<Datatype, 'BYTES'>, rowElements: number, rows: number): Promise<TensorData> {
  const ArrayType = TYPED_ARRAY_OF[datatype];
  const rowBytes = rowElements * ArrayType.BYTES_PER_ELEMENT;
  const handle = await open(path, 'r').catch((error: Error) => {
    throw new Error(`input '${inputName}': its warm-up file '${file}' cannot be read: ${error.message}`);
  });
  const bytes = new Uint8Array(rowBytes * rows);
  try {
    const { size } = await handle.stat();
    if (size < rowBytes) {
      throw new Error(`input '${inputName}': its warm-up file '${file}' holds ${size} bytes, but one row of it is ${rowBytes} bytes (${rowElements} ${datatype} elements)`);
    }
    let read = 0;
    while (read < rowBytes) {
      const { bytesRead } = await handle.read(bytes, read, rowBytes - read, read);
      if (bytesRead === 0) throw new Error(`input '${inputName}': its warm-up file '${file}' ended after ${read} bytes`);
      read += bytesRead;
    }
  } finally {
    await handle.close();
  }
  for (let row = 1; row < rows; row++) bytes.copyWithin(row * rowBytes, 0, rowBytes);
  return new ArrayType(bytes.buffer);
}

async function readStrings(path: string, file: string, inputName: string, rowElements: number): Promise<string[]> {
  const handle = await open(path, 'r').catch((error: Error) => {
    throw new Error(`input '${inputName}': its warm-up file '${file}' cannot be read: ${error.message}`);
  });
  let bytes: Buffer;
  try {
    const { size } = await handle.stat();
    if (size > MAX_WARMUP_SAMPLE_BYTES) throw new Error(`input '${inputName}': its warm-up file '${file}' holds ${size} bytes, more than the ${MAX_WARMUP_SAMPLE_BYTES} a warm-up sample may`);
    bytes = await handle.readFile();
  } finally {
    await handle.close();
  }
  const elements: string[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    if (offset + 4 > bytes.length) throw new Error(`input '${inputName}': its warm-up file '${file}' ends inside the length of element ${elements.length}`);
    const length = bytes.readUInt32LE(offset);
    offset += 4;
    if (offset + length > bytes.length) throw new Error(`input '${inputName}': its warm-up file '${file}' ends inside element ${elements.length} (${length} bytes announced)`);
    elements.push(bytes.toString('utf8', offset, offset + length));
    offset += length;
  }
  if (elements.length !== rowElements) {
    throw new Error(`input '${inputName}': its warm-up file '${file}' holds ${elements.length} elements, but one row of it is ${rowElements}`);
  }
  return elements;
}

function repeat(row: string[], rows: number): string[] {
  const all: string[] = [];
  for (let r = 0; r < rows; r++) all.push(...row);
  return all;
}
