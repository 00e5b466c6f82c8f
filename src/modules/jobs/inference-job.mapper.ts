import type { InferenceResponse } from '../../domain/inference/inference-request.js';
import type { InferenceJob } from '../../domain/jobs/inference-job.js';
import { encodeHttpInferResponse } from '../../infra/http/binary-tensor.codec.js';

/** Where a job is polled, cancelled (DELETE) and named in `Location`. */
export function jobPath(id: string): string {
  return `/v2/jobs/${id}`;
}

const iso = (epochMillis: number | undefined): string | undefined => (epochMillis === undefined ? undefined : new Date(epochMillis).toISOString());

/**
 * A job on the wire (HTTP JSON): its state and times; `error` and `error_code` when it FAILED (or a
 * failed attempt waits for its retry); `response` when it SUCCEEDED, the very JSON the synchronous
 * infer answers (outputs as JSON data, never binary).
 */
export function jobJson(job: InferenceJob, ttlMs: number, response?: InferenceResponse): string {
  const snapshot = job.toSnapshot();
  const fields = {
    id: snapshot.id,
    model_name: snapshot.modelName,
    ...(snapshot.version !== undefined && { model_version: String(snapshot.version) }),
    state: snapshot.state,
    attempts: snapshot.attempts,
    created_at: iso(snapshot.createdAt),
    started_at: iso(snapshot.startedAt),
    finished_at: iso(snapshot.finishedAt),
    expires_at: iso(job.expiresAt(ttlMs)),
    ...(snapshot.failure && { error: snapshot.failure.message, error_code: snapshot.failure.code }),
  };
  const head = JSON.stringify(fields);
  if (!response) return head;
  return `${head.slice(0, -1)},"response":${encodeHttpInferResponse(response, () => false).body as string}}`;
}
