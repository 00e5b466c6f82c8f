import { Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import type { InferenceJobSnapshot } from '../../../domain/jobs/inference-job.js';
import { JobQueue } from '../../../domain/jobs/job-queue.port.js';
import type { CancellationSignal } from '../../../domain/inference/dynamic-batch-scheduler.js';
import { Clock } from '../../../domain/shared/clock.js';
import { AppConfig } from '../../../infra/config/app-config.js';
import { InferenceUseCase } from '../../../domain/inference/inference-use-case.port.js';
import { RequestCancellations } from '../../../domain/inference/request-cancellations.port.js';
import { JobMetrics } from '../job-metrics.js';
import { decodeJobRequest, encodeJobResponse } from '../job-payload.js';

/**
 * Runs the queued jobs, JOB_CONCURRENCY at once on this node, each through the same use case as a
 * synchronous infer (the inference use case: routing, validation, the version's scheduler, its
 * in-flight limit and circuit breaker), at the scheduler's background level: behind every client
 * request, never batched with one. Started once the repository's models are loaded (app.ts), so
 * that a job kept across a restart does not fail for a model not loaded yet.
 */
@Injectable()
export class RunInferenceJobs implements OnApplicationShutdown {
  private readonly logger = new Logger('Jobs');
  private started = false;

  constructor(
    private readonly queue: JobQueue,
    private readonly inference: InferenceUseCase,
    private readonly metrics: JobMetrics,
    private readonly config: AppConfig,
    private readonly clock: Clock,
    private readonly cancellations: RequestCancellations,
  ) {}

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    if (this.config.JOB_CONCURRENCY === 0) {
      this.logger.log(`JOB_CONCURRENCY=0: this node takes jobs but runs none${this.config.REDIS_URL ? ' (the other replicas do)' : ' (without REDIS_URL, none will run)'}`);
      return;
    }
    await this.queue.process((job, payload, signal) => this.run(job, payload, signal));
    this.logger.log(`running jobs from ${this.config.REDIS_URL ? 'Redis (BullMQ)' : 'STATE_DIR (SQLite)'}, ${this.config.JOB_CONCURRENCY} at once`);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.queue.close();
  }

  private async run(job: InferenceJobSnapshot, payload: Uint8Array, signal: CancellationSignal): Promise<Uint8Array> {
    if (job.attempts <= 1) this.metrics.started(this.clock.epochMillis() - job.createdAt);
    const request = decodeJobRequest(payload);
    // The job's cancel (or its lock lost) fires this signal; the command names it by id.
    const cancellation = this.cancellations.register(signal);
    try {
      const response = await this.inference.execute({ modelName: job.modelName, version: job.version, request, cancellation, background: true });
      return encodeJobResponse(response, this.config.MAX_RESPONSE_BYTES);
    } finally {
      this.cancellations.release(cancellation);
    }
  }
}
