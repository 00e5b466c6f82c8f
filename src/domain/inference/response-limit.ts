import { TYPED_ARRAY_OF, type TensorData } from '../shared/datatype.js';
import { DomainError } from '../shared/domain-error.js';
import type { ModelSignature } from './tensor.js';

/**
 * The most bytes one request's answer may hold (MAX_RESPONSE_BYTES): its outputs' elements, a
 * BYTES element counted as its UTF-8 bytes and the 4 bytes of its length (the raw form). What a
 * run allocates stays with the runtime until it is reused, so a request asking for gigabytes is
 * refused: before it runs when its outputs' shapes follow from the signature and its batch size,
 * after the run (before anything is shipped back) when only the run knows them.
 */

/**
 * Refuses, before the run, a request whose known outputs already exceed `maxBytes`: outputs whose
 * every dim is fixed, past the batch dim (`rows`, the request's batch size, for a batching model).
 * Outputs of variable size (a `-1` dim, BYTES) count only after the run.
 */
export function assertResponseFits(signature: ModelSignature, outputNames: readonly string[], rows: number | undefined, maxBytes: number): void {
  let bytes = 0;
  for (const spec of signature.outputs) {
    if (!outputNames.includes(spec.name) || spec.datatype === 'BYTES') continue;
    const dims = rows === undefined ? spec.shape : [rows, ...spec.shape.slice(1)];
    if (dims.some((dim) => dim < 0)) continue;
    bytes += dims.reduce((product, dim) => product * dim, TYPED_ARRAY_OF[spec.datatype].BYTES_PER_ELEMENT);
  }
  if (bytes > maxBytes) throw responseTooLarge(bytes, maxBytes, 'its outputs would hold');
}

/** The bytes a run's outputs hold, as {@link assertResponseFits} counts them. */
export function outputBytes(outputs: readonly { readonly data: TensorData }[]): number {
  let bytes = 0;
  for (const { data } of outputs) {
    if (!Array.isArray(data)) bytes += data.byteLength;
    else for (const text of data) bytes += 4 + utf8Length(text);
  }
  return bytes;
}

/** The refusal of an answer of `bytes` bytes; `what` says whether they were foreseen or counted. */
export function responseTooLarge(bytes: number, maxBytes: number, what = 'its outputs hold'): DomainError {
  return new DomainError(
    'INFERENCE.RESPONSE_TOO_LARGE',
    `the answer is too large: ${what} ${bytes} bytes, more than the ${maxBytes} bytes an answer may hold (MAX_RESPONSE_BYTES); ask for fewer rows or outputs`,
  );
}

/** UTF-8 length of a string without encoding it. */
function utf8Length(text: string): number {
  let length = text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0x80) length += code >= 0x800 && (code < 0xd800 || code > 0xdfff) ? 2 : 1;
  }
  return length;
}
