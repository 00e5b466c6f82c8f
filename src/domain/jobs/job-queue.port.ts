import type { CancellationSignal } from '../inference/dynamic-batch-scheduler.js';
import type { InferenceJob, InferenceJobSnapshot, JobState } from './inference-job.js';

/** A job as kept: its state, and its result's bytes once it SUCCEEDED. */
export interface StoredJob {
  readonly job: InferenceJob;
  readonly result?: Uint8Array;
}

/**
 * Runs one attempt of a job: its submitted payload in, its result's bytes out. A throw is judged by
 * {@link judgeJobFailure}: retried (with backoff, up to the attempts allowed) or failed for good.
 * `signal` aborts when the job is cancelled while it runs.
 */
export type JobRun = (job: InferenceJobSnapshot, payload: Uint8Array, signal: CancellationSignal) => Promise<Uint8Array>;

export interface JobCounts {
  readonly byState: Readonly<Record<JobState, number>>;
  /** When the oldest job still waiting for its first run was submitted (epoch ms); absent when none waits. */
  readonly oldestPendingSince?: number;
}

/**
 * Where jobs wait, run and are kept: the embedded store (SQLite in STATE_DIR) or BullMQ on Redis
 * (REDIS_URL). Durable either way: a job submitted is run to an end even if the process that took
 * it dies (then it runs again: at least once).
 */
export abstract class JobQueue {
  /**
   * Keeps a new PENDING job and its payload, unless a job with its id is kept already (an
   * idempotent resubmission): answers the job kept under the id, and whether it is the one given.
   * Refuses a new job with JOBS.QUEUE_FULL when the pending jobs are at their bound.
   */
  abstract submit(job: InferenceJob, payload: Uint8Array): Promise<{ readonly job: InferenceJob; readonly created: boolean }>;
  /** The job, with its result when it succeeded; undefined when unknown or past its time to live. */
  abstract find(id: string): Promise<StoredJob | undefined>;
  /** Cancels a PENDING or RUNNING job (a run in progress is aborted); undefined when unknown. */
  abstract cancel(id: string): Promise<InferenceJob | undefined>;
  abstract counts(): Promise<JobCounts>;
  /** Starts taking jobs and running them with `run`, at most the configured number at once. */
  abstract process(run: JobRun): Promise<void>;
  /** Stops taking jobs; runs in progress are left to be run again (by this node after a restart, or another replica). */
  abstract close(): Promise<void>;
}
