import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { InferenceRequest, InferenceResponse } from '../../../../src/domain/inference/inference-request.js';
import { DomainError } from '../../../../src/domain/shared/domain-error.js';
import { decodeJobRequest, decodeJobResponse, encodeJobRequest, encodeJobResponse, jobIdFor, requestDigestOf } from '../../../../src/modules/jobs/job-payload.js';

/** What a job keeps: its request and answer as bytes, its id from an Idempotency-Key, its request's digest. */
describe('job payloads, ids and digests', () => {
  const request: InferenceRequest = {
    id: 'r1',
    parameters: { priority: 1 },
    inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 2], data: new Float32Array([1.5, 2]) }, { name: 'text', datatype: 'BYTES', shape: [1], data: ['héllo'] }],
    requestedOutputs: ['out'],
    classifications: new Map([['out', 2]]),
  };

  it('keeps a request whole: typed arrays, strings, classifications', () => {
    const back = decodeJobRequest(encodeJobRequest(request));
    assert.deepEqual(back, request);
    assert.ok(back.inputs[0].data instanceof Float32Array);
  });

  it('keeps an answer within MAX_RESPONSE_BYTES and refuses a larger one (INFERENCE.RESPONSE_TOO_LARGE)', () => {
    const response: InferenceResponse = { modelName: 'm', modelVersion: '1', parameters: {}, outputs: [{ name: 'out', datatype: 'INT64', shape: [1, 2], data: new BigInt64Array([1n, 2n]) }] };
    assert.deepEqual(decodeJobResponse(encodeJobResponse(response, 1024)), response);
    const large = { ...response, outputs: [{ name: 'out', datatype: 'FP32' as const, shape: [1, 1000], data: new Float32Array(1000) }] };
    assert.throws(() => encodeJobResponse(large, 1024), (error: DomainError) => error.code === 'INFERENCE.RESPONSE_TOO_LARGE' && /MAX_RESPONSE_BYTES/.test(error.message));
  });

  it('derives the id from the model and the key (every replica finds it), random without a key', () => {
    assert.equal(jobIdFor('m', 'key-1'), jobIdFor('m', 'key-1'));
    assert.notEqual(jobIdFor('m', 'key-1'), jobIdFor('n', 'key-1'));
    assert.notEqual(jobIdFor('m', 'key-1'), jobIdFor('m', 'key-2'));
    assert.match(jobIdFor('m', 'key-1'), /^k-[0-9a-f]{40}$/);
    assert.notEqual(jobIdFor('m', undefined), jobIdFor('m', undefined));
  });

  it('digests the model, the version asked for and the request: the same submission digests the same', () => {
    // The same request decoded again: other arrays, the same digest.
    const again = decodeJobRequest(encodeJobRequest(request));
    assert.equal(requestDigestOf('m', 1, request), requestDigestOf('m', 1, again));
    assert.notEqual(requestDigestOf('m', 1, request), requestDigestOf('m', undefined, request));
    assert.notEqual(requestDigestOf('m', 1, request), requestDigestOf('n', 1, request));
    assert.notEqual(requestDigestOf('m', 1, request), requestDigestOf('m', 1, { ...request, id: 'r2' }));
    const changed = { ...request, inputs: [{ ...request.inputs[0], data: new Float32Array([1.5, 3]) }, request.inputs[1]] };
    assert.notEqual(requestDigestOf('m', 1, request), requestDigestOf('m', 1, changed));
  });
});
