import { Injectable } from '@nestjs/common';
import type { InferenceRequest } from '../../../domain/inference/inference-request.js';
import { InferenceJob } from '../../../domain/jobs/inference-job.js';
import { JobQueue } from '../../../domain/jobs/job-queue.port.js';
import { Clock } from '../../../domain/shared/clock.js';
import { encodeJobRequest, jobIdFor, requestDigestOf } from '../job-payload.js';

export interface SubmitInferenceJobCommand {
  readonly modelName: string;
  readonly version?: number;
  /** Already judged against the model by the transport, as an infer request is. */
  readonly request: InferenceRequest;
  readonly idempotencyKey?: string;
}

/**
 * Submits an inference as a job: kept (durably) as PENDING, run later by RunInferenceJobs. With an
 * Idempotency-Key, a resubmission of the same request to the same model answers the job it made
 * (`created` false); the same key with another request is refused (JOBS.IDEMPOTENCY_KEY_REUSED).
 */
@Injectable()
export class SubmitInferenceJobHandler {
  constructor(
    private readonly queue: JobQueue,
    private readonly clock: Clock,
  ) {}

  async execute({ modelName, version, request, idempotencyKey }: SubmitInferenceJobCommand): Promise<{ job: InferenceJob; created: boolean }> {
    const payload = encodeJobRequest(request);
    const submission = {
      id: jobIdFor(modelName, idempotencyKey),
      modelName,
      ...(version !== undefined && { version }),
      requestDigest: requestDigestOf(modelName, version, request),
      ...(idempotencyKey !== undefined && { idempotencyKey }),
    };
    const { job, created } = await this.queue.submit(InferenceJob.submit(submission, this.clock), payload);
    if (!created) job.assertResubmissionOf(submission);
    return { job, created };
  }
}
