import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertResponseFits, outputBytes } from '../../../../src/domain/inference/response-limit.js';
import type { ModelSignature } from '../../../../src/domain/inference/tensor.js';
import { assertDomainError } from '../../support/domain-error.assertions.js';

const signature: ModelSignature = {
  inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }],
  outputs: [
    { name: 'scores', datatype: 'FP32', shape: [-1, 1000] },
    { name: 'label', datatype: 'INT64', shape: [-1] },
    { name: 'text', datatype: 'BYTES', shape: [-1] },
    { name: 'image', datatype: 'UINT8', shape: [-1, -1, 3] },
  ],
};

describe('the answer limit (MAX_RESPONSE_BYTES)', () => {
  it('refuses before the run what the fixed dims and the batch size already make too large', () => {
    // 256 rows × 1000 FP32 + 256 INT64 = 1,026,048 bytes.
    assertDomainError(() => assertResponseFits(signature, ['scores', 'label'], 256, 1026047), 'INFERENCE.RESPONSE_TOO_LARGE', '1026048 bytes', 'MAX_RESPONSE_BYTES');
    assertResponseFits(signature, ['scores', 'label'], 256, 1026048);
    assertResponseFits(signature, ['label'], 256, 4096);
  });

  it('leaves outputs of variable size (a -1 past the batch dim, BYTES) to the count after the run', () => {
    assertResponseFits(signature, ['text', 'image'], 1_000_000, 1);
  });

  it('reads a model without a batch dim as its fixed dims', () => {
    const fixed: ModelSignature = { inputs: [], outputs: [{ name: 'y', datatype: 'FP64', shape: [128, 128] }] };
    assertDomainError(() => assertResponseFits(fixed, ['y'], undefined, 128 * 128 * 8 - 1), 'INFERENCE.RESPONSE_TOO_LARGE', '131072 bytes');
    assertResponseFits(fixed, ['y'], undefined, 128 * 128 * 8);
  });

  it('counts outputs as their raw bytes: typed arrays by size, a BYTES element as its UTF-8 and 4 bytes of length', () => {
    assert.equal(outputBytes([{ data: new Float32Array(10) }, { data: new BigInt64Array(2) }]), 56);
    assert.equal(outputBytes([{ data: ['', 'abc', 'é', '€', '😀'] }]), 5 * 4 + 0 + 3 + 2 + 3 + 4);
  });
});
