import type { FastifyReply } from 'fastify';
import type { InferenceResponse } from '../../domain/inference/inference-request.js';
import { MODEL_VERSION_HEADER } from '../transport/model-version-header.js';
import { annotateAccessLog } from './access-log.js';
import { INFERENCE_HEADER_CONTENT_LENGTH, type EncodedHttpInferResponse } from './binary-tensor.codec.js';

/**
 * Writes what an infer answer carries besides its body, and returns the body, alike on the main
 * thread's controller and on an ingress thread: the version that served it (header and access
 * log), the access log's queue and compute times, the encoding's content type and Triton's JSON
 * length header.
 */
export function replyInferResponse(reply: FastifyReply, response: InferenceResponse, encode: () => EncodedHttpInferResponse): string | Buffer {
  void reply.header(MODEL_VERSION_HEADER, response.modelVersion);
  annotateAccessLog(reply.request.raw, {
    version: response.modelVersion,
    queue_time_us: response.parameters.queue_time_us as number,
    compute_time_us: response.parameters.compute_time_us as number,
  });
  const encoded = encode();
  void reply.header('content-type', encoded.contentType);
  if (encoded.jsonLength !== undefined) void reply.header(INFERENCE_HEADER_CONTENT_LENGTH, encoded.jsonLength);
  return encoded.body;
}
