import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { InferenceJob, type InferenceJobSnapshot } from '../../../src/domain/jobs/inference-job.js';
import type { JobQueue, JobRun } from '../../../src/domain/jobs/job-queue.port.js';
import { DomainError } from '../../../src/domain/shared/domain-error.js';
import { SystemClock } from '../../../src/infra/clock/system-clock.js';
import { BullMqJobQueue } from '../../../src/infra/jobs/bullmq-job-queue.js';
import { SqliteJobQueue, type JobQueueLimits } from '../../../src/infra/jobs/sqlite-job-queue.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';

/**
 * Both job queues for real (SQLite in a directory, BullMQ on a redis-server of the test's own),
 * with a runner the test controls: the same contract for both (idempotent submit, retries for
 * failures that may pass, none for a refused request, cancellation, bounds), then what each one
 * adds: a restarted SQLite node runs the job its crash interrupted; a BullMQ replica that dies
 * mid-job leaves it to another.
 */

const clock = new SystemClock();
const LIMITS: JobQueueLimits = { maxPending: 3, concurrency: 2, maxAttempts: 3, backoffMs: 10, ttlMs: 60_000 };
const bytes = (text: string) => new TextEncoder().encode(text);
const text = (data: Uint8Array | undefined) => new TextDecoder().decode(data);

let counter = 0;
function aJob(id = `job-${process.pid}-${++counter}`, digest = 'digest'): InferenceJob {
  return InferenceJob.submit({ id, modelName: 'm', requestDigest: digest }, clock);
}

/** A runner that does what the payload says: "ok", "fail-once" (a runtime failure, then ok), "invalid", "hang" (until cancelled). */
function scriptedRun(runs: Map<string, number>): JobRun {
  return async (job: InferenceJobSnapshot, payload: Uint8Array, signal) => {
    runs.set(job.id, (runs.get(job.id) ?? 0) + 1);
    const script = text(payload);
    if (script === 'fail-once' && runs.get(job.id) === 1) throw new DomainError('INFERENCE.RUNTIME_ERROR', 'worker process exited');
    if (script === 'invalid') throw new DomainError('INFERENCE.INVALID_SHAPE', 'wrong shape');
    if (script === 'hang') {
      await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.onAbort(resolve)));
      throw new DomainError('INFERENCE.CANCELLED', 'cancelled');
    }
    return bytes(`result of ${job.id}`);
  };
}

async function until<T>(probe: () => Promise<T | undefined>, what: string): Promise<T> {
  for (let i = 0; i < 1200; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(25);
  }
  throw new Error(`never: ${what}`);
}

const stateOf = (queue: JobQueue, id: string, state: string) => until(async () => ((await queue.find(id))?.job.state === state ? (await queue.find(id))! : undefined), `${id} ${state}`);

function contract(name: string, make: () => Promise<JobQueue>) {
  describe(`${name}: the JobQueue contract`, () => {
    let queue: JobQueue;
    const runs = new Map<string, number>();
    before(async () => {
      queue = await make();
      await queue.process(scriptedRun(runs));
    });
    after(() => queue.close());

    it('runs a job to SUCCEEDED with its result; a second submit of its id answers it, not a new one', async () => {
      const job = aJob();
      const first = await queue.submit(job, bytes('ok'));
      assert.equal(first.created, true);
      const done = await stateOf(queue, job.id, 'SUCCEEDED');
      assert.equal(text(done.result), `result of ${job.id}`);
      assert.equal(done.job.toSnapshot().attempts, 1);
      const again = await queue.submit(aJob(job.id), bytes('ok'));
      assert.equal(again.created, false);
      assert.equal(again.job.state, 'SUCCEEDED');
      assert.equal(runs.get(job.id), 1);
    });

    it('retries a runtime failure and succeeds; fails a refused request at once, without retries', async () => {
      const flaky = aJob();
      await queue.submit(flaky, bytes('fail-once'));
      const retried = await stateOf(queue, flaky.id, 'SUCCEEDED');
      assert.equal(retried.job.toSnapshot().attempts, 2);
      const invalid = aJob();
      await queue.submit(invalid, bytes('invalid'));
      const failed = await stateOf(queue, invalid.id, 'FAILED');
      assert.deepEqual(failed.job.toSnapshot().failure, { code: 'INFERENCE.INVALID_SHAPE', message: 'wrong shape' });
      assert.equal(failed.job.toSnapshot().attempts, 1);
      assert.equal(runs.get(invalid.id), 1);
    });

    it('cancels a running job (its run is aborted) and a pending one; refuses to cancel a finished one', async () => {
      const [a, b, c] = [aJob(), aJob(), aJob()];
      for (const job of [a, b, c]) await queue.submit(job, bytes('hang'));
      // Two run (concurrency 2), one waits.
      await until(async () => ((await queue.counts()).byState.RUNNING === 2 ? true : undefined), 'two running');
      const counts = await queue.counts();
      assert.equal(counts.byState.PENDING, 1);
      assert.ok(counts.oldestPendingSince! <= clock.epochMillis());
      for (const job of [a, b, c]) assert.equal((await queue.cancel(job.id))!.state, 'CANCELLED');
      for (const job of [a, b, c]) assert.equal((await queue.find(job.id))!.job.state, 'CANCELLED');
      await until(async () => ((await queue.counts()).byState.RUNNING === 0 ? true : undefined), 'the runs aborted');
      assert.equal((await queue.counts()).byState.CANCELLED >= 3, true);
      const done = aJob();
      await queue.submit(done, bytes('ok'));
      await stateOf(queue, done.id, 'SUCCEEDED');
      await assert.rejects(queue.cancel(done.id), (error: DomainError) => error.code === 'JOBS.NOT_CANCELLABLE');
      assert.equal(await queue.cancel('unknown-job'), undefined);
    });

    it('refuses a new job past maxPending with JOBS.QUEUE_FULL', async () => {
      const hung = [aJob(), aJob()];
      for (const job of hung) await queue.submit(job, bytes('hang'));
      await until(async () => ((await queue.counts()).byState.RUNNING === 2 ? true : undefined), 'two running');
      const waiting = [aJob(), aJob(), aJob()];
      for (const job of waiting) await queue.submit(job, bytes('ok'));
      await assert.rejects(queue.submit(aJob(), bytes('ok')), (error: DomainError) => error.code === 'JOBS.QUEUE_FULL' && /JOB_MAX_PENDING/.test(error.message));
      for (const job of hung) await queue.cancel(job.id);
      for (const job of waiting) await stateOf(queue, job.id, 'SUCCEEDED');
    });

    it('admits exactly maxPending of many submissions at once', async () => {
      const hung = [aJob(), aJob()];
      for (const job of hung) await queue.submit(job, bytes('hang'));
      await until(async () => ((await queue.counts()).byState.RUNNING === 2 ? true : undefined), 'two running');
      const outcomes = await Promise.allSettled(Array.from({ length: 12 }, () => queue.submit(aJob(), bytes('ok'))));
      const admitted = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value.job.id] : []));
      assert.equal(admitted.length, LIMITS.maxPending, `${admitted.length} admitted`);
      assert.ok(outcomes.every((o) => o.status === 'fulfilled' || (o.reason as DomainError).code === 'JOBS.QUEUE_FULL'));
      for (const job of hung) await queue.cancel(job.id);
      for (const id of admitted) await stateOf(queue, id, 'SUCCEEDED');
    });
  });
}

describe('job queues', () => {
  let dir: string;
  let redis: RedisServer;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'onnx-serving-jobs-'));
    redis = await startRedisServer();
  });
  after(async () => {
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  });

  contract('SQLite', async () => new SqliteJobQueue(join(dir, 'contract.sqlite'), LIMITS, clock));
  contract('BullMQ', async () => new BullMqJobQueue({ ...LIMITS, redisUrl: redis.url, prefix: 'contract', lockDurationMs: 1000, stalledIntervalMs: 500 }, clock));

  it('SQLite: a job RUNNING when its process ended runs again at the next start (at least once)', async () => {
    const file = join(dir, 'restart.sqlite');
    const first = new SqliteJobQueue(file, LIMITS, clock);
    const runs = new Map<string, number>();
    const job = aJob();
    await first.process(async () => new Promise<Uint8Array>(() => undefined)); // never ends: the "crash" comes first
    await first.submit(job, bytes('ok'));
    await stateOf(first, job.id, 'RUNNING');
    await first.close();
    const second = new SqliteJobQueue(file, LIMITS, clock);
    try {
      assert.equal((await second.find(job.id))!.job.state, 'RUNNING', 'as the crash left it');
      await second.process(scriptedRun(runs));
      const done = await stateOf(second, job.id, 'SUCCEEDED');
      assert.equal(done.job.toSnapshot().attempts, 2);
    } finally {
      await second.close();
    }
  });

  it('SQLite: keeps requests and answers as files beside the database: a request file until the job ends, the answer until it expires; a stray file is removed at start', async () => {
    const root = await mkdtemp(join(tmpdir(), 'onnx-serving-job-files-'));
    const files = () => readdir(join(root, 'jobs'));
    try {
      const queue = new SqliteJobQueue(join(root, 'jobs.sqlite'), LIMITS, clock);
      const job = aJob();
      await queue.process(scriptedRun(new Map()));
      await queue.submit(job, bytes('ok'));
      await stateOf(queue, job.id, 'SUCCEEDED');
      await until(async () => ((await files()).length === 1 ? true : undefined), 'the request file removed');
      assert.match((await files())[0]!, new RegExp(`^${job.id}\\.[0-9a-f-]+\\.response$`));
      await queue.close();
      // What a crash between writing a request and saving its row leaves.
      await writeFile(join(root, 'jobs', 'lost.0000.request'), 'x');
      const reopened = new SqliteJobQueue(join(root, 'jobs.sqlite'), LIMITS, clock);
      try {
        assert.deepEqual((await files()).filter((file) => file.startsWith('lost')), []);
        assert.equal(text((await reopened.find(job.id))!.result), `result of ${job.id}`);
      } finally {
        await reopened.close();
      }
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  const ttlQueues: [string, () => JobQueue][] = [
    ['SQLite', () => new SqliteJobQueue(join(dir, 'ttl.sqlite'), { ...LIMITS, ttlMs: 1000 }, clock)],
    ['BullMQ', () => new BullMqJobQueue({ ...LIMITS, ttlMs: 1000, redisUrl: redis.url, prefix: 'ttl', lockDurationMs: 1000, stalledIntervalMs: 500 }, clock)],
  ];
  for (const [name, make] of ttlQueues) {
    it(`${name}: a finished job is forgotten after its time to live, and its id makes a new job then`, async () => {
      const queue = make();
      try {
        await queue.process(scriptedRun(new Map()));
        const job = aJob();
        await queue.submit(job, bytes('ok'));
        await stateOf(queue, job.id, 'SUCCEEDED');
        await until(async () => ((await queue.find(job.id)) === undefined ? true : undefined), 'forgotten');
        const again = await queue.submit(aJob(job.id, 'another digest'), bytes('ok'));
        assert.equal(again.created, true);
        assert.equal(again.job.toSnapshot().requestDigest, 'another digest');
        await stateOf(queue, job.id, 'SUCCEEDED');
      } finally {
        await queue.close();
      }
    });
  }

  it('BullMQ: a replica that dies mid-job leaves it to another, which runs it to the end', async () => {
    const options = { ...LIMITS, redisUrl: redis.url, prefix: 'failover', lockDurationMs: 1000, stalledIntervalMs: 300 };
    const dying = new BullMqJobQueue(options, clock);
    const job = aJob();
    let started!: () => void;
    const runStarted = new Promise<void>((resolve) => (started = resolve));
    await dying.process(async () => {
      started();
      return new Promise<Uint8Array>(() => undefined);
    });
    await dying.submit(job, bytes('ok'));
    await runStarted;
    // Gone without a word: its lock is not renewed any more (what SIGKILL leaves; the process e2e kills one for real).
    await dying.close();
    const survivor = new BullMqJobQueue(options, clock);
    const runs = new Map<string, number>();
    try {
      await survivor.process(scriptedRun(runs));
      const done = await stateOf(survivor, job.id, 'SUCCEEDED');
      assert.equal(text(done.result), `result of ${job.id}`);
      assert.equal(runs.get(job.id), 1);
    } finally {
      await survivor.close();
    }
  });

  it('BullMQ: JOB_MAX_PENDING is exact across replicas: of 30 submissions at once on 3 replicas, 5 (the bound) are admitted, the rest refused', async () => {
    const options = { ...LIMITS, maxPending: 5, redisUrl: redis.url, prefix: 'exact-bound', lockDurationMs: 1000, stalledIntervalMs: 500 };
    // No worker anywhere: every admitted job stays pending.
    const replicas = [new BullMqJobQueue(options, clock), new BullMqJobQueue(options, clock), new BullMqJobQueue(options, clock)];
    try {
      // Connected first (their connections refuse commands while connecting: JOBS.STORE_UNAVAILABLE).
      for (const replica of replicas) await until(() => replica.counts().catch(() => undefined), 'the replica connected');
      const outcomes = await Promise.allSettled(Array.from({ length: 30 }, (_, i) => replicas[i % 3]!.submit(aJob(), bytes('ok'))));
      const admitted = outcomes.filter((o) => o.status === 'fulfilled');
      const refused = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
      assert.equal(admitted.length, 5, `${admitted.length} admitted`);
      assert.ok(refused.every((o) => (o.reason as DomainError).code === 'JOBS.QUEUE_FULL'), refused.map((o) => String(o.reason)).join('; '));
      for (const replica of replicas) assert.equal((await replica.counts()).byState.PENDING, 5);
      // One job submitted on two replicas at once (its idempotency key) holds one place.
      const [first] = admitted as PromiseFulfilledResult<{ job: InferenceJob }>[];
      await replicas[0]!.cancel(first!.value.job.id);
      const twice = aJob();
      const both = await Promise.all([replicas[1]!.submit(twice, bytes('ok')), replicas[2]!.submit(aJob(twice.id), bytes('ok'))]);
      assert.deepEqual(both.map((b) => b.job.id), [twice.id, twice.id]);
      assert.equal((await replicas[0]!.counts()).byState.PENDING, 5);
      await assert.rejects(replicas[0]!.submit(aJob(), bytes('ok')), (error: DomainError) => error.code === 'JOBS.QUEUE_FULL');
    } finally {
      await Promise.all(replicas.map((replica) => replica.close()));
    }
  });

  it('BullMQ: with Redis down, a submission is refused with JOBS.STORE_UNAVAILABLE naming Redis', async () => {
    const queue = new BullMqJobQueue({ ...LIMITS, redisUrl: redis.url, prefix: 'down', lockDurationMs: 1000, stalledIntervalMs: 500 }, clock);
    try {
      await queue.counts();
      await redis.kill();
      await assert.rejects(queue.submit(aJob(), bytes('ok')), (error: DomainError) => error.code === 'JOBS.STORE_UNAVAILABLE' && /Redis, REDIS_URL/.test(error.message));
    } finally {
      await redis.restart();
      await queue.close();
    }
  });
});
