import { Injectable } from '@nestjs/common';
import { getToken, InjectMetric, makeHistogramProvider } from '@willsoto/nestjs-prometheus';
import { Gauge, register, type Histogram } from 'prom-client';
import { JOB_STATES } from '../../domain/jobs/inference-job.js';
import { JobQueue } from '../../domain/jobs/job-queue.port.js';
import { Clock } from '../../domain/shared/clock.js';
import { AppConfig } from '../../infra/config/app-config.js';

/** Seconds, from 10 ms to an hour: a job may wait long behind interactive traffic. */
const WAIT_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600];

/**
 * The jobs' metrics. The gauges are read from the queue at each scrape: with Redis, they are the
 * cluster's (every replica reports the same figures: aggregate them with max, not sum); the
 * histogram is this node's.
 */
export const JOB_METRIC_PROVIDERS = [
  makeHistogramProvider({
    name: 'async_inference_job_start_delay_seconds',
    help: 'From a job being submitted to its first run starting, on the node that ran it.',
    buckets: WAIT_BUCKETS,
  }),
  {
    provide: getToken('async_inference_jobs'),
    useFactory: (queue: JobQueue) =>
      new Gauge({
        ...fresh('async_inference_jobs'),
        help: 'Async inference jobs by state (PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED); finished ones until JOB_RESULT_TTL_MS. With Redis, the whole cluster\'s.',
        labelNames: ['state'],
        async collect() {
          const { byState } = await queue.counts().catch(() => ({ byState: undefined }));
          if (byState) for (const state of JOB_STATES) this.set({ state }, byState[state]);
        },
      }),
    inject: [JobQueue],
  },
  {
    provide: getToken('async_inference_job_oldest_pending_age_seconds'),
    useFactory: (queue: JobQueue, clock: Clock) =>
      new Gauge({
        ...fresh('async_inference_job_oldest_pending_age_seconds'),
        help: 'How long the oldest job waiting for its first run has waited (0: none waits): the queue\'s age.',
        async collect() {
          const counts = await queue.counts().catch(() => undefined);
          if (counts) this.set(counts.oldestPendingSince === undefined ? 0 : Math.max(0, (clock.epochMillis() - counts.oldestPendingSince) / 1000));
        },
      }),
    inject: [JobQueue, Clock],
  },
];

/** A gauge's name, any earlier one of that name (a server started before in this process) removed: its collect reads this server's queue. */
function fresh(name: string): { name: string } {
  register.removeSingleMetric(name);
  return { name };
}

@Injectable()
export class JobMetrics {
  private readonly enabled: boolean;

  constructor(
    config: AppConfig,
    @InjectMetric('async_inference_job_start_delay_seconds') private readonly startDelay: Histogram,
  ) {
    this.enabled = config.ALLOW_METRICS;
  }

  /** A job's first run started `delayMs` after it was submitted. */
  started(delayMs: number): void {
    if (this.enabled) this.startDelay.observe(Math.max(0, delayMs) / 1000);
  }
}
