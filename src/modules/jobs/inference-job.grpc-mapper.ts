import type { InferenceResponse } from '../../domain/inference/inference-request.js';
import type { InferenceJob } from '../../domain/jobs/inference-job.js';
import { encodeModelInferResponse } from '../../infra/grpc/infer-message.codec.js';
import type { ModelInferResponseMessage } from '../../infra/grpc/inference-messages.js';

/** onnx_serving.InferenceJob (src/infra/grpc/proto/inference_jobs.proto) as @grpc/proto-loader takes it. */
export interface InferenceJobMessage {
  readonly id: string;
  readonly model_name: string;
  readonly model_version: string;
  readonly state: string;
  readonly attempts: number;
  readonly created_at_ms: string;
  readonly started_at_ms: string;
  readonly finished_at_ms: string;
  readonly expires_at_ms: string;
  readonly error: string;
  readonly error_code: string;
  readonly response?: ModelInferResponseMessage;
  readonly created: boolean;
}

/** A job over gRPC: the fields of the HTTP JSON, times in epoch ms, the response as ModelInfer's (typed contents). */
export function jobMessage(job: InferenceJob, ttlMs: number, response?: InferenceResponse, created = false): InferenceJobMessage {
  const snapshot = job.toSnapshot();
  const ms = (value: number | undefined) => String(value ?? 0);
  return {
    id: snapshot.id,
    model_name: snapshot.modelName,
    model_version: snapshot.version === undefined ? '' : String(snapshot.version),
    state: snapshot.state,
    attempts: snapshot.attempts,
    created_at_ms: ms(snapshot.createdAt),
    started_at_ms: ms(snapshot.startedAt),
    finished_at_ms: ms(snapshot.finishedAt),
    expires_at_ms: ms(job.expiresAt(ttlMs)),
    error: snapshot.failure?.message ?? '',
    error_code: snapshot.failure?.code ?? '',
    ...(response && { response: encodeModelInferResponse(response, 'typed') }),
    created,
  };
}
