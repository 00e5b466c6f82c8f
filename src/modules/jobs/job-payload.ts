import { createHash, randomUUID } from 'node:crypto';
import { deserialize, serialize } from 'node:v8';
import type { InferenceRequest, InferenceResponse } from '../../domain/inference/inference-request.js';
import { responseTooLarge } from '../../domain/inference/response-limit.js';

/**
 * What a job keeps of its request and of its answer, as bytes: V8's serialization of the decoded
 * request (tensors as typed arrays, whatever transport sent them) and of the response. One node
 * version serves a deployment, so every replica reads what another wrote.
 */
export function encodeJobRequest(request: InferenceRequest): Uint8Array {
  // Each tensor's elements copied into an array of their own: V8 writes a typed array's whole
  // buffer, and a decoded tensor may be a view into the request's body (or a pooled slab).
  const inputs = request.inputs.map((tensor) => ({ name: tensor.name, datatype: tensor.datatype, shape: [...tensor.shape], data: tensor.data.slice() }));
  return serialize({
    ...(request.id !== undefined && { id: request.id }),
    parameters: { ...request.parameters },
    inputs,
    requestedOutputs: [...request.requestedOutputs],
    ...(request.classifications && { classifications: new Map(request.classifications) }),
  });
}

export function decodeJobRequest(payload: Uint8Array): InferenceRequest {
  return deserialize(payload) as InferenceRequest;
}

/** The answer as kept: refused past `maxBytes` (MAX_RESPONSE_BYTES), like an answer a client waits for. */
export function encodeJobResponse(response: InferenceResponse, maxBytes: number): Uint8Array {
  const bytes = serialize(response);
  if (bytes.length > maxBytes) throw responseTooLarge(bytes.length, maxBytes, 'the job result would hold');
  return bytes;
}

export function decodeJobResponse(bytes: Uint8Array): InferenceResponse {
  return deserialize(bytes) as InferenceResponse;
}

/**
 * A job's id: with an Idempotency-Key, derived from the model and the key (so every replica finds
 * the job a resubmission names, without a lookup table); without one, random.
 */
export function jobIdFor(modelName: string, idempotencyKey: string | undefined): string {
  if (idempotencyKey === undefined) return randomUUID();
  return `k-${createHash('sha256').update(modelName).update('\0').update(idempotencyKey).digest('hex').slice(0, 40)}`;
}

/**
 * What tells one submission from another under the same key: the model, the version asked for and
 * the request, read field by field (its tensors' elements as bytes), whatever transport sent it.
 */
export function requestDigestOf(modelName: string, version: number | undefined, request: InferenceRequest): string {
  const hash = createHash('sha256');
  hash.update(
    JSON.stringify({
      modelName,
      version: version ?? null,
      id: request.id ?? null,
      parameters: Object.entries(request.parameters).sort(([a], [b]) => (a < b ? -1 : 1)),
      requestedOutputs: request.requestedOutputs,
      classifications: request.classifications ? [...request.classifications] : null,
      inputs: request.inputs.map(({ name, datatype, shape }) => ({ name, datatype, shape })),
    }),
  );
  for (const { data } of request.inputs) {
    if (Array.isArray(data)) for (const element of data) hash.update(`${Buffer.byteLength(element)}:`).update(element);
    else hash.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
  return hash.digest('hex');
}
