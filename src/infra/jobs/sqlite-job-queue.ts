import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import type { CancellationSignal } from '../../domain/inference/dynamic-batch-scheduler.js';
import { InferenceJob, JOB_STATES, judgeJobFailure, type InferenceJobSnapshot, type JobState } from '../../domain/jobs/inference-job.js';
import { JobQueue, type JobCounts, type JobRun, type StoredJob } from '../../domain/jobs/job-queue.port.js';
import type { Clock, TimerHandle } from '../../domain/shared/clock.js';
import { DomainError } from '../../domain/shared/domain-error.js';

export interface JobQueueLimits {
  /** Jobs PENDING at most; a new one past it is refused (JOBS.QUEUE_FULL). */
  readonly maxPending: number;
  /** Jobs run at once by this process. */
  readonly concurrency: number;
  /** Runs a job may have in all (the first and its retries). */
  readonly maxAttempts: number;
  /** The first retry's delay (ms); each next one doubles it. */
  readonly backoffMs: number;
  /** How long a finished job is kept (ms). */
  readonly ttlMs: number;
}

/** A run in progress here: what cancels it. */
class RunCancellation implements CancellationSignal {
  aborted = false;
  private readonly listeners = new Set<() => void>();

  onAbort(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    for (const listener of this.listeners) listener();
  }
}

/**
 * The embedded job queue: one SQLite database (node:sqlite, in the runtime) in STATE_DIR, written
 * in WAL mode with synchronous=FULL, so that a job acknowledged to its client survives a crash.
 * One process owns it (like STATE_DIR's other files). At start, the jobs RUNNING when the last
 * process ended are PENDING again (at least once). Retries wait their backoff in the table
 * (`run_after`); finished jobs are deleted once past their time to live.
 *
 * SQLite's calls are synchronous: a payload is written on the event loop's thread, bounded by
 * MAX_REQUEST_BYTES like the body it came in (measured: ~10 ms for 8 MiB on this machine's disk).
 */
export class SqliteJobQueue extends JobQueue {
  private readonly db: DatabaseSync;
  private readonly statements: {
    insert: StatementSync;
    select: StatementSync;
    update: StatementSync;
    next: StatementSync;
    nextDue: StatementSync;
    countByState: StatementSync;
    oldestPending: StatementSync;
    running: StatementSync;
    deleteExpired: StatementSync;
    payload: StatementSync;
  };
  private run?: JobRun;
  private readonly inProgress = new Map<string, RunCancellation>();
  private wakeTimer?: TimerHandle;
  private sweepTimer?: TimerHandle;
  private closed = false;

  constructor(
    file: string,
    private readonly limits: JobQueueLimits,
    private readonly clock: Clock,
  ) {
    super();
    mkdirSync(dirname(file), { recursive: true });
    this.db = new DatabaseSync(file);
    this.db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = FULL;
      CREATE TABLE IF NOT EXISTS async_inference_jobs (
        id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        snapshot TEXT NOT NULL,
        payload BLOB,
        result BLOB,
        created_at INTEGER NOT NULL,
        run_after INTEGER NOT NULL DEFAULT 0,
        expires_at INTEGER
      ) STRICT;
      CREATE INDEX IF NOT EXISTS inference_jobs_pending ON async_inference_jobs (state, run_after, created_at);
      CREATE INDEX IF NOT EXISTS inference_jobs_expiry ON async_inference_jobs (expires_at);
    `);
    this.statements = {
      insert: this.db.prepare('INSERT INTO async_inference_jobs (id, state, snapshot, payload, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING'),
      select: this.db.prepare('SELECT snapshot, result FROM async_inference_jobs WHERE id = ?'),
      update: this.db.prepare('UPDATE async_inference_jobs SET state = ?, snapshot = ?, result = ?, run_after = ?, expires_at = ?, payload = CASE WHEN ? THEN NULL ELSE payload END WHERE id = ?'),
      next: this.db.prepare("SELECT id FROM async_inference_jobs WHERE state = 'PENDING' AND run_after <= ? ORDER BY created_at LIMIT 1"),
      nextDue: this.db.prepare("SELECT MIN(run_after) AS due FROM async_inference_jobs WHERE state = 'PENDING'"),
      countByState: this.db.prepare('SELECT state, COUNT(*) AS count FROM async_inference_jobs WHERE expires_at IS NULL OR expires_at > ? GROUP BY state'),
      oldestPending: this.db.prepare("SELECT MIN(created_at) AS since FROM async_inference_jobs WHERE state = 'PENDING'"),
      running: this.db.prepare("SELECT id FROM async_inference_jobs WHERE state = 'RUNNING'"),
      deleteExpired: this.db.prepare('DELETE FROM async_inference_jobs WHERE expires_at <= ?'),
      payload: this.db.prepare('SELECT payload FROM async_inference_jobs WHERE id = ?'),
    };
  }

  async submit(job: InferenceJob, payload: Uint8Array): Promise<{ job: InferenceJob; created: boolean }> {
    const kept = await this.find(job.id);
    if (kept) return { job: kept.job, created: false };
    // Past its time to live but not swept yet: the key makes a new job.
    this.statements.deleteExpired.run(this.clock.epochMillis());
    const pending = (this.statements.countByState.all(this.clock.epochMillis()) as { state: string; count: number }[]).find((row) => row.state === 'PENDING')?.count ?? 0;
    if (pending >= this.limits.maxPending) throw queueFull(this.limits.maxPending);
    const snapshot = job.toSnapshot();
    this.statements.insert.run(job.id, snapshot.state, JSON.stringify(snapshot), payload, snapshot.createdAt);
    this.pump();
    return { job: this.load(job.id)!.job, created: true };
  }

  async find(id: string): Promise<StoredJob | undefined> {
    const kept = this.load(id);
    if (!kept || kept.job.isExpired(this.limits.ttlMs, this.clock)) return undefined;
    return kept;
  }

  async cancel(id: string): Promise<InferenceJob | undefined> {
    const kept = await this.find(id);
    if (!kept) return undefined;
    kept.job.cancel(this.clock);
    this.save(kept.job);
    this.inProgress.get(id)?.abort();
    return kept.job;
  }

  async counts(): Promise<JobCounts> {
    const byState = Object.fromEntries(JOB_STATES.map((state) => [state, 0])) as Record<JobState, number>;
    for (const row of this.statements.countByState.all(this.clock.epochMillis()) as { state: JobState; count: number }[]) byState[row.state] = row.count;
    const oldest = (this.statements.oldestPending.get() as { since: number | null }).since;
    return { byState, ...(oldest !== null && { oldestPendingSince: oldest }) };
  }

  async process(run: JobRun): Promise<void> {
    this.run = run;
    // Runs the last process left RUNNING: it ended before they did, so they run again.
    for (const { id } of this.statements.running.all() as { id: string }[]) {
      const kept = this.load(id)!;
      kept.job.interrupt();
      this.save(kept.job);
    }
    this.sweep();
    this.pump();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.clock.clearTimer(this.wakeTimer);
    this.clock.clearTimer(this.sweepTimer);
    // Runs in progress stay RUNNING in the table: the next start runs them again.
    for (const cancellation of this.inProgress.values()) cancellation.abort();
    this.db.close();
  }

  /** Starts as many due jobs as free slots allow; wakes up again when the next retry is due. */
  private pump(): void {
    if (!this.run || this.closed) return;
    while (this.inProgress.size < this.limits.concurrency) {
      const next = this.statements.next.get(this.clock.epochMillis()) as { id: string } | undefined;
      if (!next) break;
      const kept = this.load(next.id)!;
      kept.job.start(this.clock);
      this.save(kept.job);
      const payload = (this.statements.payload.get(next.id) as { payload: Uint8Array }).payload;
      const cancellation = new RunCancellation();
      this.inProgress.set(next.id, cancellation);
      void this.execute(kept.job.toSnapshot(), payload, cancellation);
    }
    this.clock.clearTimer(this.wakeTimer);
    this.wakeTimer = undefined;
    const due = (this.statements.nextDue.get() as { due: number | null }).due;
    if (due !== null && this.inProgress.size < this.limits.concurrency) {
      this.wakeTimer = this.clock.setTimer(() => this.pump(), Math.max(0, due - this.clock.epochMillis()));
    }
  }

  private async execute(snapshot: InferenceJobSnapshot, payload: Uint8Array, cancellation: RunCancellation): Promise<void> {
    let result: Uint8Array | undefined;
    let error: unknown;
    try {
      result = await this.run!(snapshot, payload, cancellation);
    } catch (thrown) {
      error = thrown;
    }
    this.inProgress.delete(snapshot.id);
    if (this.closed) return;
    const kept = this.load(snapshot.id);
    // Cancelled (or forgotten) while it ran: what the run made is dropped.
    if (kept && kept.job.state === 'RUNNING') {
      const { job } = kept;
      if (result !== undefined) {
        job.succeed(this.clock);
        this.save(job, result);
      } else {
        const { failure, retryable } = judgeJobFailure(error);
        if (retryable && job.toSnapshot().attempts < this.limits.maxAttempts) {
          job.retry(failure);
          this.save(job, undefined, this.clock.epochMillis() + this.limits.backoffMs * 2 ** (job.toSnapshot().attempts - 1));
        } else {
          job.fail(failure, this.clock);
          this.save(job);
        }
      }
    }
    this.pump();
  }

  /** Deletes the jobs past their time to live, now and then. */
  private sweep(): void {
    if (this.closed) return;
    this.statements.deleteExpired.run(this.clock.epochMillis());
    this.sweepTimer = this.clock.setTimer(() => this.sweep(), Math.min(this.limits.ttlMs, 60_000));
  }

  private load(id: string): StoredJob | undefined {
    const row = this.statements.select.get(id) as { snapshot: string; result: Uint8Array | null } | undefined;
    if (!row) return undefined;
    return { job: InferenceJob.restore(JSON.parse(row.snapshot) as InferenceJobSnapshot), ...(row.result !== null && { result: row.result }) };
  }

  private save(job: InferenceJob, result?: Uint8Array, runAfter = 0): void {
    const snapshot = job.toSnapshot();
    const finished = job.isFinished;
    this.statements.update.run(snapshot.state, JSON.stringify(snapshot), result ?? null, runAfter, job.expiresAt(this.limits.ttlMs) ?? null, finished ? 1 : 0, job.id);
  }
}

export function queueFull(maxPending: number): DomainError {
  return new DomainError('JOBS.QUEUE_FULL', `${maxPending} jobs are pending already (JOB_MAX_PENDING); retry later`, { retryAfterSeconds: 1 });
}
