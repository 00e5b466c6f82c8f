import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import type { CancellationSignal } from '../../domain/inference/dynamic-batch-scheduler.js';
import { InferenceJob, JOB_STATES, judgeJobFailure, type InferenceJobSnapshot, type JobFailure, type JobState } from '../../domain/jobs/inference-job.js';
import { JobQueue, type JobCounts, type JobRun, type StoredJob } from '../../domain/jobs/job-queue.port.js';
import type { Clock } from '../../domain/shared/clock.js';
import { DomainError } from '../../domain/shared/domain-error.js';
import { queueFull, type JobQueueLimits } from './sqlite-job-queue.js';

export interface BullMqOptions extends JobQueueLimits {
  readonly redisUrl: string;
  /** Namespace of every key (several deployments on one Redis). */
  readonly prefix: string;
  /** BullMQ's lockDuration: a worker that has not renewed a job's lock for this long has lost it (ms). */
  readonly lockDurationMs: number;
  /** BullMQ's stalledInterval: how often lost jobs (their worker died) are looked for and put back to wait (ms). */
  readonly stalledIntervalMs: number;
}

const QUEUE_NAME = 'inference-jobs';

/** A job's data in BullMQ: what it was submitted with, the payload as base64 (BullMQ stores JSON). */
interface JobData {
  readonly modelName: string;
  readonly version?: number;
  readonly requestDigest: string;
  readonly idempotencyKey?: string;
  readonly createdAt: number;
  readonly payload: string;
}

/**
 * JOB_MAX_PENDING across replicas: a submission reserves its place in one script, which counts
 * the pending jobs (BullMQ's wait, paused, prioritized and delayed keys, read as its own getCounts
 * does) plus the places reserved and not yet expired, and reserves one (the job's id, with its
 * expiry, in a sorted set) only below the bound. The place is released once BullMQ has the job;
 * meanwhile the job counts twice (a submission may be refused a moment early, never admitted past
 * the bound). A replica that dies between reserving and adding leaves a place that expires after
 * RESERVATION_TTL_MS. Concurrent submissions of one id (one job) hold one place. BullMQ has no bound
 * on a queue's length, and its add is a script of its own that this one cannot join: hence the
 * reservation. Time is Redis' own (TIME), the same for every replica.
 *
 * KEYS: wait, paused, prioritized, delayed, reservations; ARGV: the bound, the reservation's ttl (ms), the job id.
 */
const RESERVE_PENDING_PLACE = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
if redis.call('ZSCORE', KEYS[5], ARGV[3]) then return 1 end
local pending = redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2]) + redis.call('ZCARD', KEYS[3]) + redis.call('ZCARD', KEYS[4]) + redis.call('ZCARD', KEYS[5])
if pending >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[5], now + tonumber(ARGV[2]), ARGV[3])
return 1`;
/** How long a reserved place lasts without its job added: far above an add's round trips, so that a slow add still holds its place. */
const RESERVATION_TTL_MS = 60_000;

/** The failed reason of a run cancelled by its client (not a failure). */
const CANCELLED_REASON = 'cancelled by its client';

/**
 * The job queue on Redis, with BullMQ (REDIS_URL): every replica submits to and works the same
 * queue. What BullMQ gives: a job's lock, renewed while it runs, so that when a replica dies
 * (SIGKILL, a lost node) its job is found stalled after `lockDuration` and run to the end by
 * another one (at least once; up to JOB_MAX_ATTEMPTS stalls); retries with exponential backoff;
 * unique job ids (idempotency: a second add of an id is not added); removal after the time to live.
 *
 * States are BullMQ's, named as the domain's: waiting/prioritized/delayed (a retry waiting its
 * backoff) are PENDING, active RUNNING, completed SUCCEEDED, failed FAILED. A cancellation is
 * kept beside the queue (`<prefix>:inference-jobs:cancelled:<id>`, a snapshot of the CANCELLED
 * job for the time to live, and a sorted set that counts them): a waiting job is removed from the
 * queue; a running one is aborted by the replica running it, told on a pub/sub channel.
 */
export class BullMqJobQueue extends JobQueue {
  private readonly connection: Redis;
  private readonly queue: Queue<JobData, string>;
  private worker?: Worker<JobData, string>;
  private subscriber?: Redis;
  private workerConnection?: Redis;
  private readonly keys: { cancelled: (id: string) => string; cancelledSet: string; channel: string; reservations: string };

  constructor(
    private readonly options: BullMqOptions,
    private readonly clock: Clock,
  ) {
    super();
    // Calls from requests fail at once while Redis is away (JOBS.STORE_UNAVAILABLE), rather than waiting in a queue.
    this.connection = new Redis(options.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    this.connection.on('error', () => undefined); // reconnects by itself; calls meanwhile fail with their own error
    this.queue = new Queue(QUEUE_NAME, { connection: this.connection, prefix: options.prefix });
    this.queue.on('error', () => undefined);
    const base = `${options.prefix}:${QUEUE_NAME}`;
    this.keys = { cancelled: (id) => `${base}:cancelled:${id}`, cancelledSet: `${base}:cancelled`, channel: `${base}:cancel`, reservations: `${base}:pending-reservations` };
  }

  async submit(job: InferenceJob, payload: Uint8Array): Promise<{ job: InferenceJob; created: boolean }> {
    return this.unavailableWhenDown(async () => {
      const kept = await this.find(job.id);
      if (kept) return { job: kept.job, created: false };
      const { wait, paused, prioritized, delayed } = this.queue.keys;
      const reserved = await this.connection.eval(RESERVE_PENDING_PLACE, 5, wait!, paused!, prioritized!, delayed!, this.keys.reservations, this.options.maxPending, RESERVATION_TTL_MS, job.id);
      if (reserved !== 1) throw queueFull(this.options.maxPending);
      try {
        return await this.add(job, payload);
      } finally {
        // Not released (Redis down): it expires by itself.
        await this.connection.zrem(this.keys.reservations, job.id).catch(() => undefined);
      }
    });
  }

  /** Adds the job to BullMQ (its place reserved): the job kept under its id, and whether it is this one. */
  private async add(job: InferenceJob, payload: Uint8Array): Promise<{ job: InferenceJob; created: boolean }> {
    // A job past its time to live that BullMQ has not removed yet (it cleans up as later jobs finish): the key makes a new job.
    if ((await this.queue.getJobState(job.id)) !== 'unknown') await this.queue.remove(job.id);
    const snapshot = job.toSnapshot();
    const ttlSeconds = Math.ceil(this.options.ttlMs / 1000);
    await this.queue.add(
      'infer',
      {
        modelName: snapshot.modelName,
        ...(snapshot.version !== undefined && { version: snapshot.version }),
        requestDigest: snapshot.requestDigest,
        ...(snapshot.idempotencyKey !== undefined && { idempotencyKey: snapshot.idempotencyKey }),
        createdAt: snapshot.createdAt,
        payload: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('base64'),
      },
      {
        jobId: job.id,
        attempts: this.options.maxAttempts,
        backoff: { type: 'exponential', delay: this.options.backoffMs },
        removeOnComplete: { age: ttlSeconds },
        removeOnFail: { age: ttlSeconds },
      },
    );
    // Another replica may have added the same id a moment before: the job kept is the answer.
    const added = (await this.find(job.id))?.job ?? job;
    return { job: added, created: added.toSnapshot().createdAt === snapshot.createdAt && added.toSnapshot().requestDigest === snapshot.requestDigest };
  }

  async find(id: string): Promise<StoredJob | undefined> {
    return this.unavailableWhenDown(async () => {
      const cancelled = await this.connection.get(this.keys.cancelled(id));
      if (cancelled !== null) return { job: InferenceJob.restore(JSON.parse(cancelled) as InferenceJobSnapshot) };
      // The state first: a job read completed has its return value (BullMQ completes a job in one script).
      const state = await this.queue.getJobState(id);
      if (state === 'unknown') return undefined;
      const bullJob = await this.queue.getJob(id);
      if (!bullJob) return undefined;
      const job = InferenceJob.restore(snapshotOf(bullJob, state));
      if (job.isExpired(this.options.ttlMs, this.clock)) return undefined;
      return { job, ...(job.state === 'SUCCEEDED' && { result: Buffer.from(bullJob.returnvalue, 'base64') }) };
    });
  }

  async cancel(id: string): Promise<InferenceJob | undefined> {
    return this.unavailableWhenDown(async () => {
      const kept = await this.find(id);
      if (!kept) return undefined;
      if (kept.job.state === 'CANCELLED') return kept.job;
      kept.job.cancel(this.clock);
      const snapshot = kept.job.toSnapshot();
      // NX: of two cancellations at once, the first one's snapshot is kept.
      await this.connection
        .multi()
        .set(this.keys.cancelled(id), JSON.stringify(snapshot), 'PX', this.options.ttlMs, 'NX')
        .zadd(this.keys.cancelledSet, snapshot.finishedAt!, id)
        .publish(this.keys.channel, id)
        .exec();
      // Waiting: out of the queue at once. Running (locked): its replica aborts it on the message.
      await this.queue.remove(id).catch(() => undefined);
      return kept.job;
    });
  }

  async counts(): Promise<JobCounts> {
    return this.unavailableWhenDown(async () => {
      const counts = await this.queue.getJobCounts('waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed');
      const now = this.clock.epochMillis();
      await this.connection.zremrangebyscore(this.keys.cancelledSet, 0, now - this.options.ttlMs);
      const cancelled = await this.connection.zcard(this.keys.cancelledSet);
      const byState = Object.fromEntries(JOB_STATES.map((state) => [state, 0])) as Record<JobState, number>;
      byState.PENDING = (counts.waiting ?? 0) + (counts.prioritized ?? 0) + (counts.delayed ?? 0);
      byState.RUNNING = counts.active ?? 0;
      byState.SUCCEEDED = counts.completed ?? 0;
      byState.FAILED = counts.failed ?? 0;
      byState.CANCELLED = cancelled;
      const [oldest] = await this.queue.getJobs(['waiting'], 0, 0, true);
      return { byState, ...(oldest && { oldestPendingSince: oldest.timestamp }) };
    });
  }

  async process(run: JobRun): Promise<void> {
    // BullMQ's workers block on Redis: a connection of their own, which retries forever (BullMQ's requirement).
    this.workerConnection = new Redis(this.options.redisUrl, { maxRetriesPerRequest: null });
    this.workerConnection.on('error', () => undefined); // reconnects by itself
    this.worker = new Worker<JobData, string>(QUEUE_NAME, (bullJob, _token, signal) => this.execute(run, bullJob, signal), {
      connection: this.workerConnection,
      prefix: this.options.prefix,
      concurrency: this.options.concurrency,
      lockDuration: this.options.lockDurationMs,
      stalledInterval: this.options.stalledIntervalMs,
      // A job whose replicas keep dying with it is failed after as many stalls as it has attempts.
      maxStalledCount: this.options.maxAttempts,
      autorun: false,
    });
    this.worker.on('error', () => undefined); // connection errors: BullMQ reconnects
    // A run cancelled here: out of the failed set (the cancellation snapshot speaks for it).
    this.worker.on('failed', (bullJob, error) => {
      if (bullJob && error.message === CANCELLED_REASON) void bullJob.remove().catch(() => undefined);
    });
    this.subscriber = new Redis(this.options.redisUrl, { maxRetriesPerRequest: null });
    this.subscriber.on('error', () => undefined);
    this.subscriber.on('message', (_channel, id: string) => this.worker?.cancelJob(id, CANCELLED_REASON));
    await this.subscriber.subscribe(this.keys.channel);
    void this.worker.run();
    await this.worker.waitUntilReady();
  }

  async close(): Promise<void> {
    // Runs in progress are not waited for: their locks lapse and another replica (or this one, restarted) runs them.
    if (this.connection.status === 'ready') {
      await this.worker?.close(true);
      await this.queue.close();
    } else {
      // Redis away: BullMQ's closing would wait for it; the connections are dropped instead.
      void this.worker?.close(true).catch(() => undefined);
      void this.queue.close().catch(() => undefined);
    }
    this.workerConnection?.disconnect();
    this.subscriber?.disconnect();
    this.connection.disconnect();
  }

  /** Redis failing (unreachable, or refusing) answers JOBS.STORE_UNAVAILABLE (503), naming it; a programming error stays what it is. */
  private async unavailableWhenDown<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (error instanceof DomainError || error instanceof TypeError || error instanceof RangeError || error instanceof ReferenceError) throw error;
      const reason = this.connection.status === 'ready' ? 'failed' : 'cannot be reached';
      throw new DomainError('JOBS.STORE_UNAVAILABLE', `the job store (Redis, REDIS_URL) ${reason}: ${(error as Error).message}`, { retryAfterSeconds: 1 });
    }
  }

  private async execute(run: JobRun, bullJob: Job<JobData, string>, signal: AbortSignal | undefined): Promise<string> {
    if ((await this.connection.exists(this.keys.cancelled(bullJob.id!))) === 1) throw new UnrecoverableError(CANCELLED_REASON);
    const payload = Buffer.from(bullJob.data.payload, 'base64');
    const snapshot = snapshotOf(bullJob, 'active');
    try {
      const result = await run(snapshot, payload, signalOf(signal));
      return Buffer.from(result.buffer, result.byteOffset, result.byteLength).toString('base64');
    } catch (error) {
      if (signal?.aborted) throw new UnrecoverableError(CANCELLED_REASON);
      const { failure, retryable } = judgeJobFailure(error);
      const reason = JSON.stringify(failure);
      throw retryable ? new Error(reason) : new UnrecoverableError(reason);
    }
  }
}

/** A BullMQ job as the domain's snapshot. */
function snapshotOf(bullJob: Job<JobData, string>, bullState: string): InferenceJobSnapshot {
  const { data } = bullJob;
  const state = stateOf(bullState);
  const failure = bullJob.failedReason ? failureOf(bullJob.failedReason) : undefined;
  return {
    id: bullJob.id!,
    modelName: data.modelName,
    ...(data.version !== undefined && { version: data.version }),
    requestDigest: data.requestDigest,
    ...(data.idempotencyKey !== undefined && { idempotencyKey: data.idempotencyKey }),
    state,
    createdAt: data.createdAt,
    ...(bullJob.processedOn !== undefined && { startedAt: bullJob.processedOn }),
    ...((state === 'SUCCEEDED' || state === 'FAILED') && bullJob.finishedOn !== undefined && { finishedAt: bullJob.finishedOn }),
    attempts: bullJob.attemptsStarted ?? bullJob.attemptsMade,
    ...(failure && state !== 'SUCCEEDED' && { failure }),
  };
}

function stateOf(bullState: string): JobState {
  switch (bullState) {
    case 'active':
      return 'RUNNING';
    case 'completed':
      return 'SUCCEEDED';
    case 'failed':
      return 'FAILED';
    default:
      return 'PENDING'; // waiting, prioritized, delayed (a retry's backoff), paused, waiting-children
  }
}

/** A failed reason as this adapter wrote it (a JobFailure's JSON); BullMQ's own (a stalled job given up) as a runtime error. */
function failureOf(reason: string): JobFailure {
  try {
    const parsed = JSON.parse(reason) as Partial<JobFailure>;
    if (typeof parsed.code === 'string' && typeof parsed.message === 'string') return { code: parsed.code, message: parsed.message };
  } catch {
    // not ours
  }
  return { code: 'INFERENCE.RUNTIME_ERROR', message: reason };
}

/** BullMQ's AbortSignal as the scheduler's cancellation signal. */
function signalOf(signal: AbortSignal | undefined): CancellationSignal {
  return {
    get aborted() {
      return signal?.aborted ?? false;
    },
    onAbort(listener) {
      if (!signal) return () => undefined;
      signal.addEventListener('abort', listener, { once: true });
      return () => signal.removeEventListener('abort', listener);
    },
  };
}

