import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DynamicBatchScheduler, ManualCancellation, type SchedulerRequest, type SchedulerResult } from '../../../../src/domain/inference/dynamic-batch-scheduler.js';
import { DEFAULT_QUEUE_POLICY, type SchedulingPolicy } from '../../../../src/domain/inference/scheduling-policy.js';
import { assertRejectsWithDomainError } from '../../support/domain-error.assertions.js';
import { FakeBatchRunner, eventLoopTurns, x } from '../../support/fake-batch-runner.js';
import { FakeClock } from '../../support/fake-clock.js';
import { aSchedulingPolicy } from '../../support/model-version.mother.js';

/**
 * onRefusalChange: how a transport that cannot ask the scheduler at each request (an ingress
 * thread) learns that refusalBeforeReading() changed its answer. One batch runs at a time; the
 * queue holds one request.
 */

let scheduler: DynamicBatchScheduler | undefined;
let runner: FakeBatchRunner | undefined;
/** What refusalBeforeReading() said at each change the scheduler told of. */
let told: boolean[] = [];

function start(policy: Partial<SchedulingPolicy> = {}): DynamicBatchScheduler {
  runner = new FakeBatchRunner();
  told = [];
  const limits = { concurrency: () => 1, maxTimeoutMs: 60_000, onRefusalChange: () => told.push(scheduler!.refusalBeforeReading() !== undefined) };
  scheduler = new DynamicBatchScheduler(aSchedulingPolicy({ defaultQueuePolicy: { ...DEFAULT_QUEUE_POLICY, maxQueueSize: 1 }, maxBatchSize: 1, ...policy }), runner.run, limits, new FakeClock());
  return scheduler;
}

function enqueue(value: number, options: Omit<SchedulerRequest, 'inputs' | 'outputNames'> = {}): Promise<SchedulerResult> {
  const result = scheduler!.enqueue({ inputs: [x([value, value])], outputNames: ['y'], ...options });
  result.catch(() => undefined);
  return result;
}

afterEach(() => {
  scheduler?.stop('the test is over');
  runner?.finishAll();
  scheduler = undefined;
  runner = undefined;
});

describe('DynamicBatchScheduler: telling when the refusal before reading changes', () => {
  it('tells when the queue fills and when a batch taken from it makes room, once each', async () => {
    start();
    const running = enqueue(1);
    const run = await runner!.nth(0);
    assert.deepEqual(told, [], 'a request that runs at once leaves the queue empty');
    const queued = enqueue(2);
    assert.deepEqual(told, [true]);
    await assertRejectsWithDomainError(enqueue(3), 'INFERENCE.QUEUE_FULL');
    assert.deepEqual(told, [true], 'a refusal changes nothing');
    run.finish();
    await running;
    (await runner!.nth(1)).finish();
    await queued;
    assert.deepEqual(told, [true, false]);
  });

  it('tells when a queued request leaves early (its client went away) and when the scheduler stops', async () => {
    const scheduler = start();
    void enqueue(1);
    await runner!.nth(0);
    const client = new ManualCancellation();
    const queued = enqueue(2, { signal: client });
    client.abort();
    await assertRejectsWithDomainError(queued, 'INFERENCE.CANCELLED');
    assert.deepEqual(told, [true, false]);
    const waiting = enqueue(3);
    scheduler.stop('unloaded');
    await assertRejectsWithDomainError(waiting, 'REGISTRY.VERSION_NOT_READY');
    assert.deepEqual(told, [true, false, true, false]);
  });

  it('never tells on a model with priority levels, where no request is refused before reading', async () => {
    start({ priorityLevels: 2, defaultPriorityLevel: 1, priorityQueuePolicies: new Map([[1, { ...DEFAULT_QUEUE_POLICY, maxQueueSize: 1 }]]) });
    void enqueue(1);
    await runner!.nth(0);
    void enqueue(2);
    await assertRejectsWithDomainError(enqueue(3), 'INFERENCE.QUEUE_FULL');
    await eventLoopTurns();
    assert.deepEqual(told, []);
  });
});
