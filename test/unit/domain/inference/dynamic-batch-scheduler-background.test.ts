import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  DynamicBatchScheduler,
  MAX_BACKGROUND_QUEUE,
  type SchedulerRequest,
  type SchedulerResult,
} from '../../../../src/domain/inference/dynamic-batch-scheduler.js';
import { DEFAULT_QUEUE_POLICY, type SchedulingPolicy } from '../../../../src/domain/inference/scheduling-policy.js';
import type { Tensor } from '../../../../src/domain/inference/tensor.js';
import { assertRejectsWithDomainError } from '../../support/domain-error.assertions.js';
import { FakeBatchRunner, eventLoopTurns, rowsOf, x, type Row } from '../../support/fake-batch-runner.js';
import { FakeClock } from '../../support/fake-clock.js';
import { aSchedulingPolicy } from '../../support/model-version.mother.js';

/**
 * The background level of the scheduler (a rollout's shadow copies): the model of
 * dynamic-batch-scheduler.test.ts, input 'x' FP32 [batch, 2], answered with x + 1.
 */

/** The first value of every row of a run: which requests it carried. */
const firstValues = (inputs: readonly Tensor[]): number[] => rowsOf(inputs[0]).map(([v]) => v);

let scheduler: DynamicBatchScheduler | undefined;
let runner: FakeBatchRunner | undefined;

function start(policy: Partial<SchedulingPolicy> = {}, concurrency: () => number = () => 1): { scheduler: DynamicBatchScheduler; runner: FakeBatchRunner } {
  runner = new FakeBatchRunner();
  scheduler = new DynamicBatchScheduler(aSchedulingPolicy(policy), runner.run, { concurrency, maxTimeoutMs: 60_000 }, new FakeClock());
  return { scheduler, runner };
}

function enqueue(request: SchedulerRequest): Promise<SchedulerResult> {
  const result = scheduler!.enqueue(request);
  result.catch(() => undefined);
  return result;
}

/** A client request of the rows given. */
const client = (rows: Row[], options: Omit<SchedulerRequest, 'inputs' | 'outputNames'> = {}) => enqueue({ inputs: [x(...rows)], outputNames: ['y'], ...options });

/** A background request (a shadow copy) of the rows given. */
const background = (rows: Row[]) => enqueue({ inputs: [x(...rows)], outputNames: ['y'], background: true });

afterEach(() => {
  scheduler?.stop('the test is over');
  runner?.finishAll();
  scheduler = undefined;
  runner = undefined;
});

describe('DynamicBatchScheduler: background requests', () => {
  it('are served, batched among themselves, when no client waits', async () => {
    const { runner } = start();
    const copies = [background([[1, 1]]), background([[2, 2]]), background([[3, 3]])];
    const run = await runner.nth(0);
    assert.deepEqual(firstValues(run.inputs), [1, 2, 3]);
    run.finish();
    const results = await Promise.all(copies);
    assert.deepEqual(results.map((r) => rowsOf(r.outputs[0])), [[[2, 2]], [[3, 3]], [[4, 4]]]);
    assert.deepEqual(results.map((r) => r.batchSize), [3, 3, 3]);
  });

  it('wait behind every client request, even those that came later', async () => {
    const { runner } = start({ batching: false, maxBatchSize: 0 });
    const blocker = client([[0, 0]]);
    const busy = await runner.nth(0);
    const copy = background([[1, 1]]);
    const late = client([[2, 2]]);
    const later = client([[3, 3]]);
    await eventLoopTurns();
    busy.finish();
    for (let i = 1; i <= 3; i++) (await runner.nth(i)).finish();
    assert.deepEqual(runner.calls.map((call) => firstValues(call.inputs)), [[0], [2], [3], [1]]);
    await Promise.all([blocker, copy, late, later]);
  });

  it('wait behind the lowest priority level of a model with levels', async () => {
    const { runner } = start({ batching: false, maxBatchSize: 0, priorityLevels: 3, defaultPriorityLevel: 2 });
    const blocker = client([[0, 0]]);
    const busy = await runner.nth(0);
    const copy = background([[1, 1]]);
    const lowest = client([[2, 2]], { priority: 3 });
    const normal = client([[3, 3]]);
    await eventLoopTurns();
    busy.finish();
    for (let i = 1; i <= 3; i++) (await runner.nth(i)).finish();
    assert.deepEqual(runner.calls.map((call) => firstValues(call.inputs)), [[0], [3], [2], [1]]);
    await Promise.all([blocker, copy, lowest, normal]);
  });

  it("never join a client's batch, though compatible and room is left", async () => {
    const { runner } = start({ maxBatchSize: 8 });
    const blocker = client([[0, 0]]);
    const busy = await runner.nth(0);
    const copies = [background([[1, 1]]), background([[2, 2]])];
    const clients = [client([[3, 3]]), client([[4, 4]])];
    await eventLoopTurns();
    busy.finish();

    const clientRun = await runner.nth(1);
    assert.deepEqual(firstValues(clientRun.inputs), [3, 4], 'the clients run alone');
    clientRun.finish();
    const backgroundRun = await runner.nth(2);
    assert.deepEqual(firstValues(backgroundRun.inputs), [1, 2]);
    backgroundRun.finish();

    const [c3, c4] = await Promise.all(clients);
    assert.deepEqual([c3.batchSize, c4.batchSize], [2, 2]);
    assert.deepEqual(rowsOf(c4.outputs[0]), [[5, 5]]);
    const [b1, b2] = await Promise.all(copies);
    assert.deepEqual(rowsOf(b1.outputs[0]), [[2, 2]]);
    assert.deepEqual(rowsOf(b2.outputs[0]), [[3, 3]]);
    await blocker;
  });

  it('leave a free instance to a client that arrives while they wait to run', async () => {
    let instances = 0;
    const { runner } = start({ maxBatchSize: 8 }, () => instances);
    const copy = background([[1, 1]]);
    await eventLoopTurns();
    const arriving = client([[2, 2]]);
    instances = 1;
    const run = await runner.nth(0);
    assert.deepEqual(firstValues(run.inputs), [2]);
    run.finish();
    (await runner.nth(1)).finish();
    assert.deepEqual(firstValues(runner.calls[1].inputs), [1]);
    await Promise.all([copy, arriving]);
  });

  it(`are refused with QUEUE_FULL beyond ${MAX_BACKGROUND_QUEUE} waiting, and never run; clients are still queued`, async () => {
    const { runner, scheduler } = start({}, () => 0);
    const waiting = Array.from({ length: MAX_BACKGROUND_QUEUE }, (_, i) => background([[i, i]]));
    const refusal = await assertRejectsWithDomainError(background([[999, 999]]), 'INFERENCE.QUEUE_FULL', `max_queue_size ${MAX_BACKGROUND_QUEUE}`);
    assert.ok((refusal.details.retryAfterSeconds ?? 0) > 0);
    assert.equal(scheduler.queuedCount, MAX_BACKGROUND_QUEUE);

    const clientRequest = client([[500, 500]]);
    assert.equal(scheduler.queuedCount, MAX_BACKGROUND_QUEUE + 1, 'the background cap is not the clients\' queue');
    assert.equal(scheduler.refusalBeforeReading(), undefined, "a full background level does not refuse clients before reading");
    scheduler.stop('the test is over');
    await assertRejectsWithDomainError(clientRequest, 'REGISTRY.VERSION_NOT_READY');
    for (const request of waiting) await assertRejectsWithDomainError(request, 'REGISTRY.VERSION_NOT_READY');
    await eventLoopTurns();
    assert.equal(runner.calls.length, 0);
  });

  it("are not refused by a full client queue, nor count towards its max_queue_size", async () => {
    const { runner, scheduler } = start({ defaultQueuePolicy: { ...DEFAULT_QUEUE_POLICY, maxQueueSize: 1 } }, () => 0);
    const queued = client([[1, 1]]);
    await assertRejectsWithDomainError(client([[2, 2]]), 'INFERENCE.QUEUE_FULL', 'max_queue_size 1');
    const copy = background([[3, 3]]);
    await eventLoopTurns();
    assert.equal(scheduler.queuedCount, 2);
    assert.ok(scheduler.refusalBeforeReading(), 'the client level is full');
    scheduler.stop('the test is over');
    await assertRejectsWithDomainError(queued, 'REGISTRY.VERSION_NOT_READY');
    await assertRejectsWithDomainError(copy, 'REGISTRY.VERSION_NOT_READY');
    assert.equal(runner.calls.length, 0);
  });

  it('take room again once served: the cap counts waiting requests only', async () => {
    const { runner } = start({ maxBatchSize: MAX_BACKGROUND_QUEUE });
    const blocker = client([[0, 0]]);
    const busy = await runner.nth(0);
    const first = Array.from({ length: MAX_BACKGROUND_QUEUE }, (_, i) => background([[i, i]]));
    await assertRejectsWithDomainError(background([[-1, -1]]), 'INFERENCE.QUEUE_FULL');
    busy.finish();
    const run = await runner.nth(1);
    assert.equal(run.rows, MAX_BACKGROUND_QUEUE, 'every waiting copy in one run');
    const second = background([[100, 100]]);
    run.finish();
    await Promise.all([blocker, ...first]);
    (await runner.nth(2)).finish();
    assert.deepEqual(rowsOf((await second).outputs[0]), [[101, 101]]);
  });

  it('still have a deadline: the server\'s maximum timeout', async () => {
    runner = new FakeBatchRunner();
    const clock = new FakeClock();
    scheduler = new DynamicBatchScheduler(aSchedulingPolicy(), runner.run, { concurrency: () => 0, maxTimeoutMs: 30 }, clock);
    const copy = background([[1, 1]]);
    await clock.advance(30);
    await assertRejectsWithDomainError(copy, 'INFERENCE.DEADLINE_EXCEEDED', '(30 ms)');
  });
});
