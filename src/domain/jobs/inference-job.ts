import type { Clock } from '../shared/clock.js';
import { DomainError, type DomainErrorCode } from '../shared/domain-error.js';

/** A job's states, in the words of KServe's and Azure's async inference: waiting, running, then one of three ends. */
export const JOB_STATES = ['PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'] as const;
export type JobState = (typeof JOB_STATES)[number];

/** Why a job failed: the domain error's stable code and message, as the synchronous infer would have answered. */
export interface JobFailure {
  readonly code: string;
  readonly message: string;
}

/** What a job is, as stores keep it and transports show it (timestamps in epoch milliseconds). */
export interface InferenceJobSnapshot {
  readonly id: string;
  readonly modelName: string;
  /** The version the client named; absent: the model's default (or its rollout's choice) when it runs. */
  readonly version?: number;
  readonly state: JobState;
  /** A digest of what was submitted (model, version, body), to tell a resubmission from another request under the same key. */
  readonly requestDigest: string;
  readonly idempotencyKey?: string;
  readonly createdAt: number;
  /** When it first started running (a retry keeps it). */
  readonly startedAt?: number;
  readonly finishedAt?: number;
  /** Runs begun so far, the current one included. */
  readonly attempts: number;
  readonly failure?: JobFailure;
}

export interface JobSubmission {
  readonly id: string;
  readonly modelName: string;
  readonly version?: number;
  readonly requestDigest: string;
  readonly idempotencyKey?: string;
}

const FINISHED: ReadonlySet<JobState> = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);

/**
 * An inference run as a job: PENDING until a worker takes it, RUNNING while it does, then SUCCEEDED
 * (its outputs are kept), FAILED (its error is) or CANCELLED. A run that fails for a reason that may
 * pass (the runtime, load) puts it back to PENDING for a retry; a runner that died with it RUNNING
 * (a crash, a killed replica) leaves it to be run again: delivery is at least once. A finished job
 * is kept for a time to live, then forgotten.
 */
export class InferenceJob {
  private constructor(private snapshot: InferenceJobSnapshot) {}

  static submit(submission: JobSubmission, clock: Clock): InferenceJob {
    return new InferenceJob({ ...submission, state: 'PENDING', createdAt: clock.epochMillis(), attempts: 0 });
  }

  static restore(snapshot: InferenceJobSnapshot): InferenceJob {
    return new InferenceJob(snapshot);
  }

  get id(): string {
    return this.snapshot.id;
  }

  get state(): JobState {
    return this.snapshot.state;
  }

  get isFinished(): boolean {
    return FINISHED.has(this.snapshot.state);
  }

  toSnapshot(): InferenceJobSnapshot {
    return this.snapshot;
  }

  /** A worker takes it: PENDING → RUNNING, one attempt more. */
  start(clock: Clock): void {
    this.expect('start', ['PENDING']);
    const now = clock.epochMillis();
    this.snapshot = { ...this.snapshot, state: 'RUNNING', startedAt: this.snapshot.startedAt ?? now, attempts: this.snapshot.attempts + 1 };
  }

  succeed(clock: Clock): void {
    this.expect('succeed', ['RUNNING']);
    this.snapshot = { ...this.snapshot, state: 'SUCCEEDED', finishedAt: clock.epochMillis(), failure: undefined };
  }

  /** The run failed for good (an invalid request, or retries exhausted). */
  fail(failure: JobFailure, clock: Clock): void {
    this.expect('fail', ['RUNNING', 'PENDING']);
    this.snapshot = { ...this.snapshot, state: 'FAILED', finishedAt: clock.epochMillis(), failure };
  }

  /** The run failed for a reason that may pass: PENDING again, its failure kept until the next run. */
  retry(failure: JobFailure): void {
    this.expect('retry', ['RUNNING']);
    this.snapshot = { ...this.snapshot, state: 'PENDING', failure };
  }

  /** Its runner went away mid-run (a crash, a restart): PENDING again, to be run again (at least once). */
  interrupt(): void {
    this.expect('interrupt', ['RUNNING']);
    this.snapshot = { ...this.snapshot, state: 'PENDING' };
  }

  /** The client cancels it; only a job not yet finished can be. Cancelling a cancelled job changes nothing. */
  cancel(clock: Clock): void {
    if (this.snapshot.state === 'CANCELLED') return;
    if (this.isFinished) {
      throw new DomainError('JOBS.NOT_CANCELLABLE', `job '${this.id}' has already ${this.snapshot.state === 'SUCCEEDED' ? 'succeeded' : 'failed'}: only a PENDING or RUNNING job can be cancelled`);
    }
    this.snapshot = { ...this.snapshot, state: 'CANCELLED', finishedAt: clock.epochMillis() };
  }

  /** When a finished job is forgotten (epoch ms); undefined while it is not finished. */
  expiresAt(ttlMs: number): number | undefined {
    return this.snapshot.finishedAt === undefined || !this.isFinished ? undefined : this.snapshot.finishedAt + ttlMs;
  }

  isExpired(ttlMs: number, clock: Clock): boolean {
    const expiry = this.expiresAt(ttlMs);
    return expiry !== undefined && clock.epochMillis() >= expiry;
  }

  /**
   * The same submission again (an `Idempotency-Key` resent): the job it made, unless the key now
   * comes with another request, which is refused rather than answered with another request's job.
   */
  assertResubmissionOf(submission: JobSubmission): void {
    if (submission.requestDigest !== this.snapshot.requestDigest) {
      throw new DomainError(
        'JOBS.IDEMPOTENCY_KEY_REUSED',
        `Idempotency-Key '${submission.idempotencyKey}' was used for another request to model '${this.snapshot.modelName}' (job '${this.id}'): use a new key for a new request`,
      );
    }
  }

  private expect(transition: string, from: readonly JobState[]): void {
    if (!from.includes(this.snapshot.state)) {
      throw new DomainError('JOBS.INVALID_TRANSITION', `job '${this.id}' cannot ${transition} from ${this.snapshot.state}`);
    }
  }
}

/** Failures that may pass with time: the runtime (a crashed worker process), load, a version not ready yet. Retried with backoff. */
const RETRYABLE: ReadonlySet<DomainErrorCode> = new Set<DomainErrorCode>([
  'INFERENCE.RUNTIME_ERROR',
  'INFERENCE.QUEUE_FULL',
  'INFERENCE.DEADLINE_EXCEEDED',
  'INFERENCE.CIRCUIT_OPEN',
  'INFERENCE.CONCURRENCY_LIMITED',
  'REGISTRY.VERSION_NOT_READY',
  'SERVER.NOT_READY',
  'SERVER.OVERLOADED',
]);

/**
 * How a failed run of a job is judged: a domain error of the request itself (invalid tensors, an
 * unknown model, an answer too large) fails it for good, as the synchronous infer would have
 * answered 4xx; a failure that may pass is retried. An error that is not a domain error is an
 * unexpected failure of the runtime: retried.
 */
export function judgeJobFailure(error: unknown): { readonly failure: JobFailure; readonly retryable: boolean } {
  if (error instanceof DomainError) return { failure: { code: error.code, message: error.message }, retryable: RETRYABLE.has(error.code) };
  const message = error instanceof Error ? error.message : String(error);
  return { failure: { code: 'INFERENCE.RUNTIME_ERROR', message }, retryable: true };
}

/** A job's id as clients give it back: what this server hands out (letters, digits, '-'), at most 64 characters. */
export function parseJobId(text: string): string {
  if (!/^[A-Za-z0-9-]{1,64}$/.test(text)) throw new DomainError('JOBS.NOT_FOUND', `job '${text.slice(0, 64)}' does not exist: a job id is what POST .../jobs answered`);
  return text;
}

/**
 * An `Idempotency-Key` (draft-ietf-httpapi-idempotency-key-header: a string the client makes, such
 * as a UUID): 1 to 255 visible ASCII characters.
 */
export function parseIdempotencyKey(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  if (!/^[\x21-\x7e]{1,255}$/.test(text)) {
    throw new DomainError('JOBS.INVALID_IDEMPOTENCY_KEY', 'Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID, say)');
  }
  return text;
}
