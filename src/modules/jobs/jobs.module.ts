import { join } from 'node:path';
import { Module } from '@nestjs/common';
import { JobQueue } from '../../domain/jobs/job-queue.port.js';
import { Clock } from '../../domain/shared/clock.js';
import { AppConfig } from '../../infra/config/app-config.js';
import { BullMqJobQueue } from '../../infra/jobs/bullmq-job-queue.js';
import { SqliteJobQueue } from '../../infra/jobs/sqlite-job-queue.js';
import { ThrottlingModule } from '../throttling/throttling.module.js';
import { InferenceModule } from '../inference/inference.module.js';
import { CancelInferenceJobHandler } from './cancel-inference-job/cancel-inference-job.handler.js';
import { GetInferenceJobHandler } from './get-inference-job/get-inference-job.handler.js';
import { InferenceJobGrpcController } from './get-inference-job/inference-job.grpc.controller.js';
import { InferenceJobHttpController } from './get-inference-job/inference-job.http.controller.js';
import { JOB_METRIC_PROVIDERS, JobMetrics } from './job-metrics.js';
import { RunInferenceJobs } from './run-inference-jobs/run-inference-jobs.js';
import { SubmitInferenceJobHandler } from './submit-inference-job/submit-inference-job.handler.js';
import { SubmitInferenceJobGrpcController } from './submit-inference-job/submit-inference-job.grpc.controller.js';
import { SubmitInferenceJobHttpController } from './submit-inference-job/submit-inference-job.http.controller.js';

/** The file of the embedded job queue, in STATE_DIR. */
const JOBS_DATABASE = 'jobs.sqlite';

/**
 * Async inference jobs: submitted, polled and cancelled over HTTP and gRPC, run through the inference use
 * case. The queue is BullMQ on Redis with REDIS_URL, else SQLite in STATE_DIR: durable either way.
 */
@Module({
  imports: [InferenceModule, ThrottlingModule],
  controllers: [SubmitInferenceJobHttpController, InferenceJobHttpController, SubmitInferenceJobGrpcController, InferenceJobGrpcController],
  providers: [
    {
      provide: JobQueue,
      useFactory: (config: AppConfig, clock: Clock) => {
        const limits = {
          maxPending: config.JOB_MAX_PENDING,
          concurrency: config.JOB_CONCURRENCY,
          maxAttempts: config.JOB_MAX_ATTEMPTS,
          backoffMs: config.JOB_RETRY_BACKOFF_MS,
          ttlMs: config.JOB_RESULT_TTL_MS,
        };
        return config.REDIS_URL
          ? new BullMqJobQueue({ ...limits, redisUrl: config.REDIS_URL, prefix: config.JOB_QUEUE_PREFIX, lockDurationMs: config.JOB_LOCK_DURATION_MS, stalledIntervalMs: config.JOB_STALLED_INTERVAL_MS }, clock)
          : new SqliteJobQueue(join(config.STATE_DIR, JOBS_DATABASE), limits, clock);
      },
      inject: [AppConfig, Clock],
    },
    ...JOB_METRIC_PROVIDERS,
    JobMetrics,
    SubmitInferenceJobHandler,
    GetInferenceJobHandler,
    CancelInferenceJobHandler,
    RunInferenceJobs,
  ],
})
export class JobsModule {}
