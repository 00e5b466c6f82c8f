import { Injectable } from '@nestjs/common';
import { parseJobId, type InferenceJob } from '../../../domain/jobs/inference-job.js';
import { JobQueue } from '../../../domain/jobs/job-queue.port.js';
import { jobNotFound } from '../get-inference-job/get-inference-job.handler.js';

/** Cancels a PENDING or RUNNING job (a run in progress is aborted wherever it runs); a finished one is JOBS.NOT_CANCELLABLE. */
@Injectable()
export class CancelInferenceJobHandler {
  constructor(private readonly queue: JobQueue) {}

  async execute(id: string): Promise<InferenceJob> {
    const job = await this.queue.cancel(parseJobId(id));
    if (!job) throw jobNotFound(id);
    return job;
  }
}
