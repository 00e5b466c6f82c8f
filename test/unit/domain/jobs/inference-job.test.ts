import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InferenceJob, judgeJobFailure, parseIdempotencyKey, parseJobId, type JobSubmission } from '../../../../src/domain/jobs/inference-job.js';
import { DomainError, type DomainErrorCode } from '../../../../src/domain/shared/domain-error.js';
import { FakeClock } from '../../support/fake-clock.js';

/** The job's state machine on a fake clock: transitions, attempts, times, expiry, idempotency. */

const SUBMISSION: JobSubmission = { id: 'job-1', modelName: 'resnet', version: 2, requestDigest: 'abc', idempotencyKey: 'order-17' };

function assertDomainError(run: () => unknown, code: DomainErrorCode, ...words: string[]): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof DomainError, String(error));
    assert.equal(error.code, code);
    for (const word of words) assert.ok(error.message.includes(word), `"${error.message}" names ${word}`);
    return true;
  });
}

describe('InferenceJob', () => {
  it('is PENDING when submitted, at the clock\'s time, with no attempt', async () => {
    const clock = new FakeClock();
    const job = InferenceJob.submit(SUBMISSION, clock);
    assert.deepEqual(job.toSnapshot(), { ...SUBMISSION, state: 'PENDING', createdAt: clock.epochMillis(), attempts: 0 });
    assert.equal(job.isFinished, false);
    assert.equal(job.expiresAt(1000), undefined, 'a job not finished never expires');
  });

  it('runs: RUNNING with its first start kept across retries, then SUCCEEDED, expiring a TTL after it finished', async () => {
    const clock = new FakeClock();
    const job = InferenceJob.submit(SUBMISSION, clock);
    await clock.advance(100);
    job.start(clock);
    assert.equal(job.state, 'RUNNING');
    const firstStart = clock.epochMillis();
    job.retry({ code: 'INFERENCE.RUNTIME_ERROR', message: 'worker exited' });
    assert.equal(job.state, 'PENDING');
    assert.deepEqual(job.toSnapshot().failure, { code: 'INFERENCE.RUNTIME_ERROR', message: 'worker exited' }, 'the last failure is shown while it waits');
    await clock.advance(50);
    job.start(clock);
    assert.equal(job.toSnapshot().startedAt, firstStart);
    assert.equal(job.toSnapshot().attempts, 2);
    await clock.advance(10);
    job.succeed(clock);
    assert.equal(job.state, 'SUCCEEDED');
    assert.equal(job.toSnapshot().failure, undefined);
    assert.equal(job.expiresAt(1000), clock.epochMillis() + 1000);
    await clock.advance(999);
    assert.equal(job.isExpired(1000, clock), false);
    await clock.advance(1);
    assert.equal(job.isExpired(1000, clock), true);
  });

  it('fails with the failure kept; an interrupted run is PENDING again (run again: at least once)', async () => {
    const clock = new FakeClock();
    const job = InferenceJob.submit(SUBMISSION, clock);
    job.start(clock);
    job.interrupt();
    assert.equal(job.state, 'PENDING');
    job.start(clock);
    job.fail({ code: 'INFERENCE.INVALID_SHAPE', message: 'bad' }, clock);
    assert.equal(job.state, 'FAILED');
    assert.deepEqual(job.toSnapshot().failure, { code: 'INFERENCE.INVALID_SHAPE', message: 'bad' });
    assert.equal(job.toSnapshot().finishedAt, clock.epochMillis());
  });

  it('cancels a PENDING or a RUNNING job (again: no change), never a finished one', async () => {
    const clock = new FakeClock();
    const pending = InferenceJob.submit(SUBMISSION, clock);
    pending.cancel(clock);
    assert.equal(pending.state, 'CANCELLED');
    const cancelledAt = pending.toSnapshot().finishedAt;
    await clock.advance(5);
    pending.cancel(clock);
    assert.equal(pending.toSnapshot().finishedAt, cancelledAt);
    const running = InferenceJob.submit(SUBMISSION, clock);
    running.start(clock);
    running.cancel(clock);
    assert.equal(running.state, 'CANCELLED');
    const done = InferenceJob.submit(SUBMISSION, clock);
    done.start(clock);
    done.succeed(clock);
    assertDomainError(() => done.cancel(clock), 'JOBS.NOT_CANCELLABLE', "'job-1'", 'already succeeded');
  });

  it('refuses transitions from the wrong state, naming the job and its state', async () => {
    const clock = new FakeClock();
    const job = InferenceJob.submit(SUBMISSION, clock);
    assertDomainError(() => job.succeed(clock), 'JOBS.INVALID_TRANSITION', "'job-1'", 'succeed', 'PENDING');
    job.cancel(clock);
    assertDomainError(() => job.start(clock), 'JOBS.INVALID_TRANSITION', 'start', 'CANCELLED');
    assertDomainError(() => job.retry({ code: 'x', message: 'y' }), 'JOBS.INVALID_TRANSITION', 'retry');
  });

  it('answers a resubmission of the same request; refuses the key reused for another request', async () => {
    const job = InferenceJob.submit(SUBMISSION, new FakeClock());
    job.assertResubmissionOf({ ...SUBMISSION });
    assertDomainError(() => job.assertResubmissionOf({ ...SUBMISSION, requestDigest: 'other' }), 'JOBS.IDEMPOTENCY_KEY_REUSED', "'order-17'", "'resnet'", 'new key');
  });
});

describe('judgeJobFailure', () => {
  it('retries what may pass (runtime, load, a version not ready) and anything unexpected; never a refused request', async () => {
    for (const code of ['INFERENCE.RUNTIME_ERROR', 'INFERENCE.QUEUE_FULL', 'INFERENCE.CIRCUIT_OPEN', 'INFERENCE.CONCURRENCY_LIMITED', 'INFERENCE.DEADLINE_EXCEEDED', 'REGISTRY.VERSION_NOT_READY'] as const) {
      assert.equal(judgeJobFailure(new DomainError(code, 'm')).retryable, true, code);
    }
    for (const code of ['INFERENCE.INVALID_SHAPE', 'INFERENCE.INVALID_INPUT', 'INFERENCE.RESPONSE_TOO_LARGE', 'REGISTRY.MODEL_NOT_FOUND', 'REGISTRY.VERSION_NOT_FOUND'] as const) {
      assert.equal(judgeJobFailure(new DomainError(code, 'm')).retryable, false, code);
    }
    assert.deepEqual(judgeJobFailure(new Error('socket hang up')), { failure: { code: 'INFERENCE.RUNTIME_ERROR', message: 'socket hang up' }, retryable: true });
  });
});

describe('job ids and idempotency keys', () => {
  it('takes ids of letters, digits and dashes; anything else is an unknown job', async () => {
    assert.equal(parseJobId('k-0123abcd'), 'k-0123abcd');
    assertDomainError(() => parseJobId('../etc'), 'JOBS.NOT_FOUND');
    assertDomainError(() => parseJobId('a'.repeat(65)), 'JOBS.NOT_FOUND');
  });

  it('takes 1 to 255 visible ASCII characters as a key', async () => {
    assert.equal(parseIdempotencyKey(undefined), undefined);
    assert.equal(parseIdempotencyKey('8e03978e-40d5-43e8-bc93-6894a57f9324'), '8e03978e-40d5-43e8-bc93-6894a57f9324');
    for (const bad of ['', 'a b', 'é', 'x'.repeat(256)]) assertDomainError(() => parseIdempotencyKey(bad), 'JOBS.INVALID_IDEMPOTENCY_KEY');
  });
});
