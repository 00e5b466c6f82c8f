import { Injectable } from '@nestjs/common';
import type { InferenceResponse } from '../../../domain/inference/inference-request.js';
import { parseJobId, type InferenceJob } from '../../../domain/jobs/inference-job.js';
import { JobQueue } from '../../../domain/jobs/job-queue.port.js';
import { DomainError } from '../../../domain/shared/domain-error.js';
import { decodeJobResponse } from '../job-payload.js';

/** A job as it stands, with its answer once it SUCCEEDED; JOBS.NOT_FOUND when unknown or past its time to live. */
@Injectable()
export class GetInferenceJobHandler {
  constructor(private readonly queue: JobQueue) {}

  async execute(id: string): Promise<{ job: InferenceJob; response?: InferenceResponse }> {
    const kept = await this.queue.find(parseJobId(id));
    if (!kept) throw jobNotFound(id);
    return { job: kept.job, ...(kept.result && { response: decodeJobResponse(kept.result) }) };
  }
}

export function jobNotFound(id: string): DomainError {
  return new DomainError('JOBS.NOT_FOUND', `job '${id}' does not exist, or has expired (JOB_RESULT_TTL_MS after it finished)`);
}
