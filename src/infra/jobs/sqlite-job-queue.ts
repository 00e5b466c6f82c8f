import { randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { open, readFile, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { ManualCancellation } from '../../domain/inference/dynamic-batch-scheduler.js';
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

/**
 * The embedded job queue: one SQLite database (node:sqlite, in the runtime) in STATE_DIR for the
 * jobs' states, and the requests and answers as files beside it (STATE_DIR/jobs/), written and
 * read asynchronously. SQLite's calls are synchronous: a row is small, but 8 MiB requests kept as
 * BLOBs (synchronous=FULL) held the event loop 119 ms a submission (median of 20; max 279 ms),
 * against 0.5 ms (max 7 ms) with the bytes in files written and fsynced on libuv's threads
 * (measured on the shared development machine). The rows go to SQLite in WAL mode with
 * synchronous=NORMAL (no fsync per commit on the event loop's thread): durable across a crash of
 * the process (what a restart recovers from); a power loss may lose the last submissions.
 *
 * One process owns it (like STATE_DIR's other files). At start, files no row names (a crash
 * between a file and its row) are removed, and, once the models are loaded, the jobs RUNNING when
 * the last process ended are PENDING again (at least once). Retries wait their backoff in the table (`run_after`); finished
 * jobs are deleted once past their time to live.
 */
export class SqliteJobQueue extends JobQueue {
  private readonly db: DatabaseSync;
  private readonly files: string;
  private readonly statements: {
    insert: StatementSync;
    select: StatementSync;
    update: StatementSync;
    next: StatementSync;
    nextDue: StatementSync;
    countByState: StatementSync;
    oldestPending: StatementSync;
    running: StatementSync;
    expired: StatementSync;
    delete: StatementSync;
    named: StatementSync;
  };
  private run?: JobRun;
  private readonly inProgress = new Map<string, ManualCancellation>();
  /** Submissions admitted whose row is not inserted yet (their request file being written): pending already, for JOB_MAX_PENDING. */
  private admitting = 0;
  private wakeTimer?: TimerHandle;
  private sweepTimer?: TimerHandle;
  private closed = false;

  constructor(
    file: string,
    private readonly limits: JobQueueLimits,
    private readonly clock: Clock,
  ) {
    super();
    this.files = join(dirname(file), 'jobs');
    mkdirSync(this.files, { recursive: true });
    this.db = new DatabaseSync(file);
    this.db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = NORMAL;
      CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        snapshot TEXT NOT NULL,
        request_file TEXT,
        response_file TEXT,
        created_at INTEGER NOT NULL,
        run_after INTEGER NOT NULL DEFAULT 0,
        expires_at INTEGER
      ) STRICT;
      CREATE INDEX IF NOT EXISTS jobs_pending ON jobs (state, run_after, created_at);
      CREATE INDEX IF NOT EXISTS jobs_expiry ON jobs (expires_at);
    `);
    this.statements = {
      insert: this.db.prepare('INSERT INTO jobs (id, state, snapshot, request_file, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING'),
      select: this.db.prepare('SELECT snapshot, request_file, response_file FROM jobs WHERE id = ?'),
      update: this.db.prepare('UPDATE jobs SET state = ?, snapshot = ?, response_file = ?, run_after = ?, expires_at = ?, request_file = CASE WHEN ? THEN NULL ELSE request_file END WHERE id = ?'),
      next: this.db.prepare("SELECT id FROM jobs WHERE state = 'PENDING' AND run_after <= ? ORDER BY created_at LIMIT 1"),
      nextDue: this.db.prepare("SELECT MIN(run_after) AS due FROM jobs WHERE state = 'PENDING'"),
      countByState: this.db.prepare('SELECT state, COUNT(*) AS count FROM jobs WHERE expires_at IS NULL OR expires_at > ? GROUP BY state'),
      oldestPending: this.db.prepare("SELECT MIN(created_at) AS since FROM jobs WHERE state = 'PENDING'"),
      running: this.db.prepare("SELECT id FROM jobs WHERE state = 'RUNNING'"),
      expired: this.db.prepare('SELECT id, request_file, response_file FROM jobs WHERE expires_at <= ?'),
      delete: this.db.prepare('DELETE FROM jobs WHERE id = ?'),
      named: this.db.prepare('SELECT request_file AS a, response_file AS b FROM jobs WHERE request_file IS NOT NULL OR response_file IS NOT NULL'),
    };
    this.removeUnnamedFiles();
  }

  async submit(job: InferenceJob, payload: Uint8Array): Promise<{ job: InferenceJob; created: boolean }> {
    const kept = await this.find(job.id);
    if (kept) return { job: kept.job, created: false };
    // Past its time to live but not swept yet: the key makes a new job.
    this.deleteExpired();
    const pending = (this.statements.countByState.all(this.clock.epochMillis()) as { state: string; count: number }[]).find((row) => row.state === 'PENDING')?.count ?? 0;
    // Counted and admitted in one synchronous step, so that submissions at once never pass the bound.
    if (pending + this.admitting >= this.limits.maxPending) throw queueFull(this.limits.maxPending);
    this.admitting++;
    // A file of its own (two submissions of one id at once write two), named in the row only if the row is this one.
    const requestFile = `${job.id}.${randomUUID()}.request`;
    const snapshot = job.toSnapshot();
    let inserted: boolean;
    try {
      await writeDurably(join(this.files, requestFile), payload);
      inserted = this.statements.insert.run(job.id, snapshot.state, JSON.stringify(snapshot), requestFile, snapshot.createdAt).changes === 1;
    } finally {
      this.admitting--;
    }
    if (!inserted) {
      void this.remove(requestFile);
      return { job: this.load(job.id)!.job, created: false };
    }
    this.pump();
    return { job: this.load(job.id)!.job, created: true };
  }

  async find(id: string): Promise<StoredJob | undefined> {
    const row = this.row(id);
    if (!row) return undefined;
    const job = InferenceJob.restore(JSON.parse(row.snapshot) as InferenceJobSnapshot);
    if (job.isExpired(this.limits.ttlMs, this.clock)) return undefined;
    if (job.state !== 'SUCCEEDED' || row.response_file === null) return { job };
    return { job, result: await readFile(join(this.files, row.response_file)) };
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
      const job = this.load(id)!.job;
      job.interrupt();
      this.save(job);
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
      const { job, requestFile } = this.load(next.id)!;
      job.start(this.clock);
      this.save(job);
      const cancellation = new ManualCancellation();
      this.inProgress.set(next.id, cancellation);
      void this.execute(job.toSnapshot(), requestFile!, cancellation);
    }
    this.clock.clearTimer(this.wakeTimer);
    this.wakeTimer = undefined;
    const due = (this.statements.nextDue.get() as { due: number | null }).due;
    if (due !== null && this.inProgress.size < this.limits.concurrency) {
      this.wakeTimer = this.clock.setTimer(() => this.pump(), Math.max(0, due - this.clock.epochMillis()));
    }
  }

  private async execute(snapshot: InferenceJobSnapshot, requestFile: string, cancellation: ManualCancellation): Promise<void> {
    let result: Uint8Array | undefined;
    let error: unknown;
    try {
      result = await this.run!(snapshot, await readFile(join(this.files, requestFile)), cancellation);
    } catch (thrown) {
      error = thrown;
    }
    let responseFile: string | undefined;
    if (result !== undefined && !this.closed) {
      responseFile = `${snapshot.id}.${randomUUID()}.response`;
      try {
        await writeDurably(join(this.files, responseFile), result);
      } catch (thrown) {
        [result, responseFile, error] = [undefined, undefined, thrown];
      }
    }
    this.inProgress.delete(snapshot.id);
    if (this.closed) return;
    const kept = this.load(snapshot.id);
    // Cancelled (or forgotten) while it ran: what the run made is dropped.
    if (!kept || kept.job.state !== 'RUNNING') {
      if (responseFile) void this.remove(responseFile);
    } else {
      const { job } = kept;
      if (result !== undefined) {
        job.succeed(this.clock);
        this.save(job, responseFile);
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
    this.deleteExpired();
    this.sweepTimer = this.clock.setTimer(() => this.sweep(), Math.min(this.limits.ttlMs, 60_000));
  }

  private deleteExpired(): void {
    for (const row of this.statements.expired.all(this.clock.epochMillis()) as { id: string; request_file: string | null; response_file: string | null }[]) {
      this.statements.delete.run(row.id);
      for (const file of [row.request_file, row.response_file]) if (file !== null) void this.remove(file);
    }
  }

  /** Files no row names: left by a crash between writing a file and saving its row. At construction, before any submission. */
  private removeUnnamedFiles(): void {
    const named = new Set((this.statements.named.all() as { a: string | null; b: string | null }[]).flatMap((row) => [row.a, row.b]));
    for (const file of readdirSync(this.files)) if (!named.has(file)) rmSync(join(this.files, file), { force: true });
  }

  private remove(file: string): Promise<void> {
    return unlink(join(this.files, file)).catch(() => undefined);
  }

  private row(id: string): { snapshot: string; request_file: string | null; response_file: string | null } | undefined {
    return this.statements.select.get(id) as { snapshot: string; request_file: string | null; response_file: string | null } | undefined;
  }

  private load(id: string): { job: InferenceJob; requestFile?: string } | undefined {
    const row = this.row(id);
    if (!row) return undefined;
    return { job: InferenceJob.restore(JSON.parse(row.snapshot) as InferenceJobSnapshot), ...(row.request_file !== null && { requestFile: row.request_file }) };
  }

  /** Saves a job's state; a finished job's request file is let go. */
  private save(job: InferenceJob, responseFile?: string, runAfter = 0): void {
    const snapshot = job.toSnapshot();
    const finished = job.isFinished;
    const requestFile = finished ? this.row(job.id)?.request_file : null;
    this.statements.update.run(snapshot.state, JSON.stringify(snapshot), responseFile ?? null, runAfter, job.expiresAt(this.limits.ttlMs) ?? null, finished ? 1 : 0, job.id);
    if (requestFile) void this.remove(requestFile);
  }
}

/** Writes a new file and flushes it to the disk, on libuv's threads. */
async function writeDurably(path: string, bytes: Uint8Array): Promise<void> {
  const handle = await open(path, 'wx', 0o600);
  try {
    await handle.writeFile(bytes);
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

export function queueFull(maxPending: number): DomainError {
  return new DomainError('JOBS.QUEUE_FULL', `${maxPending} jobs are pending already (JOB_MAX_PENDING); retry later`, { retryAfterSeconds: 1 });
}
