import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  DynamicBatchScheduler,
  type SchedulerRequest,
  type SchedulerResult,
} from '../../../../src/domain/inference/dynamic-batch-scheduler.js';
import { DEFAULT_QUEUE_POLICY, type QueuePolicy, type SchedulingPolicy } from '../../../../src/domain/inference/scheduling-policy.js';
import type { Tensor } from '../../../../src/domain/inference/tensor.js';
import { DomainError } from '../../../../src/domain/shared/domain-error.js';
import { assertRejectsWithDomainError } from '../../support/domain-error.assertions.js';
import {
  FakeBatchRunner,
  FakeCancellationSignal,
  eventLoopTurns,
  plusOne,
  type Compute,
  rowsOf,
  x,
  type Row,
} from '../../support/fake-batch-runner.js';
import { FakeClock } from '../../support/fake-clock.js';
import { aSchedulingPolicy } from '../../support/model-version.mother.js';

// The model of most tests: input 'x' is FP32 [batch, 2] (x, rowsOf from the support); the fake
// runner answers every requested output with x + 1, so each answer tells which rows it was cut from.

function outputOf(result: SchedulerResult, name = 'y'): Tensor {
  const output = result.outputs.find((t) => t.name === name);
  assert.ok(output, `no output '${name}' in ${result.outputs.map((t) => t.name).join(', ')}`);
  return output;
}

const queuePolicy = (overrides: Partial<QueuePolicy>): QueuePolicy => ({ ...DEFAULT_QUEUE_POLICY, ...overrides });

interface Setup {
  readonly policy?: Partial<SchedulingPolicy>;
  /** Batches that may run at once; 1 by default. */
  readonly concurrency?: () => number;
  readonly maxTimeoutMs?: number;
  readonly compute?: Compute;
}

let scheduler: DynamicBatchScheduler | undefined;
let runner: FakeBatchRunner | undefined;
/** Every timeout and batch window of these tests runs on this clock: time moves only by `clock.advance`. */
let clock: FakeClock;

function start(setup: Setup = {}): { scheduler: DynamicBatchScheduler; runner: FakeBatchRunner } {
  runner = new FakeBatchRunner(setup.compute);
  clock = new FakeClock();
  scheduler = new DynamicBatchScheduler(
    aSchedulingPolicy(setup.policy),
    runner.run,
    { concurrency: setup.concurrency ?? (() => 1), maxTimeoutMs: setup.maxTimeoutMs ?? 60_000 },
    clock,
  );
  return { scheduler, runner };
}

/**
 * Enqueues on the current scheduler. The promise is marked handled (a test asserts on the ones it
 * cares about; the after hook fails the rest), so no rejection goes unhandled.
 */
function enqueue(request: SchedulerRequest): Promise<SchedulerResult> {
  const result = scheduler!.enqueue(request);
  result.catch(() => undefined);
  return result;
}

/** A request of the rows given, asking for output 'y'. */
function ask(rows: Row[], options: Omit<SchedulerRequest, 'inputs' | 'outputNames'> = {}): Promise<SchedulerResult> {
  return enqueue({ inputs: [x(...rows)], outputNames: ['y'], ...options });
}

/** Settlement of a promise, observable without awaiting it. */
function track(promise: Promise<unknown>): { readonly settled: boolean } {
  const state = { settled: false };
  promise.then(
    () => (state.settled = true),
    () => (state.settled = true),
  );
  return state;
}

afterEach(() => {
  // Fails whatever still waits, then ends whatever still runs: no timer outlives the test.
  scheduler?.stop('the test is over');
  runner?.finishAll();
  scheduler = undefined;
  runner = undefined;
});

describe('DynamicBatchScheduler', () => {
  describe('forming batches', () => {
    it('merges the requests enqueued in one tick into one run and answers each with its own rows', async () => {
      const { runner } = start();
      const a = ask([[1, 2]]);
      const b = ask([[3, 4], [5, 6]]);
      const c = ask([[7, 8]]);

      const run = await runner.nth(0);
      assert.deepEqual(run.inputs.map((t) => t.name), ['x']);
      assert.deepEqual(run.inputs[0].shape, [4, 2]);
      assert.deepEqual(rowsOf(run.inputs[0]), [[1, 2], [3, 4], [5, 6], [7, 8]]);
      assert.deepEqual(run.outputNames, ['y']);
      run.finish(undefined, 1234);

      const [ra, rb, rc] = await Promise.all([a, b, c]);
      assert.deepEqual(rowsOf(outputOf(ra)), [[2, 3]]);
      assert.deepEqual(rowsOf(outputOf(rb)), [[4, 5], [6, 7]]);
      assert.deepEqual(rowsOf(outputOf(rc)), [[8, 9]]);
      assert.deepEqual(outputOf(rb).shape, [2, 2]);
      for (const result of [ra, rb, rc]) {
        assert.equal(result.batchSize, 4, 'rows of the run, the multi-row request counting for its rows');
        assert.equal(result.computeMicros, 1234);
        assert.ok(result.queueMicros >= 0);
      }
      assert.equal(runner.calls.length, 1);
    });

    it('cuts BYTES, INT64, BOOL and FP16 outputs back row-exactly', async () => {
      const mixed = (rows: number, s: string[], n: bigint[], b: number[], h: number[]): Tensor[] => [
        { name: 's', datatype: 'BYTES', shape: [rows], data: s },
        { name: 'n', datatype: 'INT64', shape: [rows, 2], data: BigInt64Array.from(n) },
        { name: 'b', datatype: 'BOOL', shape: [rows], data: Uint8Array.from(b) },
        { name: 'h', datatype: 'FP16', shape: [rows], data: Uint16Array.from(h) },
      ];
      const outputNames = ['s_out', 'n_out', 'b_out', 'h_out'];
      const { runner } = start({ compute: (inputs) => inputs.map((t) => plusOne(t, `${t.name}_out`)) });
      const one = enqueue({ inputs: mixed(1, ['a'], [1n, 2n], [1], [0x3c00]), outputNames });
      const two = enqueue({ inputs: mixed(2, ['b', 'c'], [3n, 4n, 5n, 6n], [0, 1], [0x4000, 0x4200]), outputNames });

      const run = await runner.nth(0);
      const merged = new Map(run.inputs.map((t) => [t.name, t]));
      assert.deepEqual(merged.get('s'), { name: 's', datatype: 'BYTES', shape: [3], data: ['a', 'b', 'c'] });
      assert.deepEqual(merged.get('n'), { name: 'n', datatype: 'INT64', shape: [3, 2], data: BigInt64Array.of(1n, 2n, 3n, 4n, 5n, 6n) });
      assert.deepEqual(merged.get('b'), { name: 'b', datatype: 'BOOL', shape: [3], data: Uint8Array.of(1, 0, 1) });
      assert.deepEqual(merged.get('h'), { name: 'h', datatype: 'FP16', shape: [3], data: Uint16Array.of(0x3c00, 0x4000, 0x4200) });
      run.finish();

      const [r1, r2] = await Promise.all([one, two]);
      assert.deepEqual(r1.outputs, [
        { name: 's_out', datatype: 'BYTES', shape: [1], data: ['a+'] },
        { name: 'n_out', datatype: 'INT64', shape: [1, 2], data: BigInt64Array.of(2n, 3n) },
        { name: 'b_out', datatype: 'BOOL', shape: [1], data: Uint8Array.of(0) },
        { name: 'h_out', datatype: 'FP16', shape: [1], data: Uint16Array.of(0x3c01) },
      ]);
      assert.deepEqual(r2.outputs, [
        { name: 's_out', datatype: 'BYTES', shape: [2], data: ['b+', 'c+'] },
        { name: 'n_out', datatype: 'INT64', shape: [2, 2], data: BigInt64Array.of(4n, 5n, 6n, 7n) },
        { name: 'b_out', datatype: 'BOOL', shape: [2], data: Uint8Array.of(1, 0) },
        { name: 'h_out', datatype: 'FP16', shape: [2], data: Uint16Array.of(0x4001, 0x4201) },
      ]);
      assert.equal(r1.batchSize, 3);
    });

    it("merges requests that list their inputs in another order, in the first one's input order", async () => {
      const z = (value: number): Tensor => ({ name: 'z', datatype: 'INT32', shape: [1], data: Int32Array.of(value) });
      const { runner } = start();
      const a = enqueue({ inputs: [x([1, 2]), z(10)], outputNames: ['y'] });
      const b = enqueue({ inputs: [z(20), x([3, 4])], outputNames: ['y'] });

      const run = await runner.nth(0);
      assert.deepEqual(run.inputs.map((t) => t.name), ['x', 'z']);
      assert.deepEqual(rowsOf(run.inputs[0]), [[1, 2], [3, 4]]);
      assert.deepEqual(run.inputs[1].data, Int32Array.of(10, 20));
      run.finish();
      assert.deepEqual(rowsOf(outputOf(await a)), [[2, 3]]);
      assert.deepEqual(rowsOf(outputOf(await b)), [[4, 5]]);
    });

    const incompatible: [string, SchedulerRequest][] = [
      ['shapes past the batch axis', { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: Float32Array.of(5, 6, 7) }], outputNames: ['y', 'w'] }],
      ['datatypes', { inputs: [{ name: 'x', datatype: 'FP64', shape: [1, 2], data: Float64Array.of(5, 6) }], outputNames: ['y', 'w'] }],
      ['requested outputs', { inputs: [x([5, 6])], outputNames: ['y'] }],
      ['order of the requested outputs', { inputs: [x([5, 6])], outputNames: ['w', 'y'] }],
    ];
    for (const [difference, other] of incompatible) {
      it(`never merges requests that differ in their ${difference}`, async () => {
        const { runner } = start({ concurrency: () => 2 });
        const first = enqueue({ inputs: [x([1, 2])], outputNames: ['y', 'w'] });
        const second = enqueue(other);

        const [run1, run2] = [await runner.nth(0), await runner.nth(1)];
        assert.deepEqual(runner.rowsPerRun, [1, 1]);
        assert.deepEqual(run1.outputNames, ['y', 'w']);
        assert.deepEqual(run2.outputNames, other.outputNames);
        assert.deepEqual(run2.inputs, other.inputs);
        run1.finish();
        run2.finish();
        assert.equal((await first).batchSize, 1);
        assert.equal((await second).batchSize, 1);
        assert.deepEqual((await second).outputs.map((t) => t.name), other.outputNames);
      });
    }

    it('runs a request enqueued after the previous batch left in a batch of its own', async () => {
      const { runner } = start({ concurrency: () => 2 });
      const a = ask([[1, 2]]);
      await runner.nth(0);
      const b = ask([[3, 4]]);
      await runner.nth(1);
      assert.deepEqual(runner.rowsPerRun, [1, 1]);
      runner.finishAll();
      assert.deepEqual(rowsOf(outputOf(await a)), [[2, 3]]);
      assert.deepEqual(rowsOf(outputOf(await b)), [[4, 5]]);
    });

    it('puts at most max_batch_size rows in a run, filling it with the compatible requests behind', async () => {
      const { runner } = start({ policy: { maxBatchSize: 4 } });
      const three = ask([[1, 1], [2, 2], [3, 3]]);
      const two = ask([[4, 4], [5, 5]]);
      const one = ask([[6, 6]]);

      const run1 = await runner.nth(0);
      assert.deepEqual(rowsOf(run1.inputs[0]), [[1, 1], [2, 2], [3, 3], [6, 6]]);
      run1.finish();
      const run2 = await runner.nth(1);
      assert.deepEqual(rowsOf(run2.inputs[0]), [[4, 4], [5, 5]]);
      run2.finish();

      assert.deepEqual(rowsOf(outputOf(await three)), [[2, 2], [3, 3], [4, 4]]);
      assert.deepEqual(rowsOf(outputOf(await two)), [[5, 5], [6, 6]]);
      assert.deepEqual(rowsOf(outputOf(await one)), [[7, 7]]);
      assert.deepEqual([(await three).batchSize, (await two).batchSize, (await one).batchSize], [4, 2, 4]);
    });

    it('splits a burst larger than max_batch_size into full runs first', async () => {
      const { runner } = start({ policy: { maxBatchSize: 4 }, concurrency: () => 2 });
      const answers = [1, 2, 3, 4, 5, 6].map((i) => ask([[i, i]]));
      await runner.nth(1);
      assert.deepEqual(runner.rowsPerRun, [4, 2]);
      runner.finishAll();
      const results = await Promise.all(answers);
      assert.deepEqual(results.map((r) => rowsOf(outputOf(r))[0][0]), [2, 3, 4, 5, 6, 7]);
      assert.deepEqual(results.map((r) => r.batchSize), [4, 4, 4, 4, 2, 2]);
    });

    it('runs each request by itself when the model does not batch', async () => {
      const { runner } = start({ policy: { batching: false, maxBatchSize: 0 }, concurrency: () => 3 });
      const a = ask([[1, 2]]);
      const b = ask([[3, 4], [5, 6]]);
      const c = ask([[7, 8]]);
      await runner.nth(2);
      assert.deepEqual(runner.calls.map((call) => rowsOf(call.inputs[0])), [[[1, 2]], [[3, 4], [5, 6]], [[7, 8]]]);
      runner.finishAll();
      assert.deepEqual(rowsOf(outputOf(await b)), [[4, 5], [6, 7]]);
      assert.deepEqual([(await a).batchSize, (await b).batchSize, (await c).batchSize], [1, 1, 1]);
    });
  });

  describe('waiting for a batch to fill', () => {
    const LONG_DELAY_MICROS = 10_000_000;

    it('holds a partial batch for max_queue_delay, and sends it once max_batch_size is reached', async () => {
      const { runner, scheduler } = start({ policy: { maxBatchSize: 4, maxQueueDelayMicros: LONG_DELAY_MICROS }, concurrency: () => 2 });
      const first = ask([[1, 1]]);
      await eventLoopTurns();
      const more = [ask([[2, 2]]), ask([[3, 3]])];
      await eventLoopTurns();
      assert.equal(runner.calls.length, 0, 'a partial batch waits although an instance is free');
      assert.equal(scheduler.queuedCount, 3);

      const last = ask([[4, 4]]);
      const run = await runner.nth(0);
      assert.deepEqual(rowsOf(run.inputs[0]), [[1, 1], [2, 2], [3, 3], [4, 4]]);
      run.finish();
      assert.deepEqual((await Promise.all([first, ...more, last])).map((r) => rowsOf(outputOf(r))), [[[2, 2]], [[3, 3]], [[4, 4]], [[5, 5]]]);
    });

    it('sends a batch at once when it reaches a preferred size, cutting at the largest preferred prefix', async () => {
      const { runner, scheduler } = start({
        policy: { maxBatchSize: 8, preferredBatchSizes: [2, 4], maxQueueDelayMicros: LONG_DELAY_MICROS },
        concurrency: () => 2,
      });
      const burst = [1, 2, 3, 4, 5].map((i) => ask([[i, i]]));
      const run1 = await runner.nth(0);
      assert.deepEqual(rowsOf(run1.inputs[0]), [[1, 1], [2, 2], [3, 3], [4, 4]]);
      await eventLoopTurns();
      assert.equal(runner.calls.length, 1, 'the fifth request alone is no preferred size: it waits');
      assert.equal(scheduler.queuedCount, 1);

      const sixth = ask([[6, 6]]);
      const run2 = await runner.nth(1);
      assert.deepEqual(rowsOf(run2.inputs[0]), [[5, 5], [6, 6]]);
      runner.finishAll();
      const results = await Promise.all([...burst, sixth]);
      assert.deepEqual(results.map((r) => r.batchSize), [4, 4, 4, 4, 2, 2]);
      assert.deepEqual(results.map((r) => rowsOf(outputOf(r))[0][0]), [2, 3, 4, 5, 6, 7]);
    });

    it('sends a partial batch once its oldest request has waited a short max_queue_delay', async () => {
      const { runner } = start({ policy: { maxBatchSize: 4, maxQueueDelayMicros: 20_000 } });
      const a = ask([[1, 1]]);
      const b = ask([[2, 2]]);
      await clock.advance(19.9);
      assert.equal(runner.calls.length, 0, 'still within max_queue_delay');
      await clock.advance(0.1);
      const run = await runner.nth(0);
      assert.deepEqual(rowsOf(run.inputs[0]), [[1, 1], [2, 2]]);
      run.finish();
      assert.equal((await a).batchSize, 2);
      assert.deepEqual(rowsOf(outputOf(await b)), [[3, 3]]);
    });

    it('with an adaptive delay, does not wait while it knows nothing of the run cost yet', async () => {
      const { runner } = start({ policy: { maxBatchSize: 4, maxQueueDelayMicros: LONG_DELAY_MICROS, adaptiveQueueDelay: true } });
      const lone = ask([[1, 1]]);
      (await runner.nth(0)).finish();
      assert.equal((await lone).batchSize, 1);
    });
  });

  describe('instances', () => {
    it('runs no more batches at once than the concurrency, and drains the queue as runs finish', async () => {
      const { runner, scheduler } = start({ policy: { maxBatchSize: 2 }, concurrency: () => 1 });
      const first = [ask([[1, 1]]), ask([[2, 2]])];
      const run1 = await runner.nth(0);
      const later = [ask([[3, 3]]), ask([[4, 4]]), ask([[5, 5]])];
      await eventLoopTurns();
      assert.equal(runner.calls.length, 1);
      assert.equal(scheduler.inflightCount, 1);
      assert.equal(scheduler.queuedCount, 3);

      run1.finish();
      const run2 = await runner.nth(1);
      assert.deepEqual(rowsOf(run2.inputs[0]), [[3, 3], [4, 4]]);
      await eventLoopTurns();
      assert.equal(runner.calls.length, 2);
      run2.finish();
      const run3 = await runner.nth(2);
      assert.deepEqual(rowsOf(run3.inputs[0]), [[5, 5]]);
      run3.finish();

      const results = await Promise.all([...first, ...later]);
      assert.deepEqual(results.map((r) => rowsOf(outputOf(r))[0][0]), [2, 3, 4, 5, 6]);
      assert.equal(scheduler.inflightCount, 0);
      assert.equal(scheduler.queuedCount, 0);
    });

    it('asks for the concurrency anew at each dispatch', async () => {
      let instances = 0;
      const { runner, scheduler } = start({ policy: { batching: false, maxBatchSize: 0 }, concurrency: () => instances });
      const a = ask([[1, 1]]);
      await eventLoopTurns();
      assert.equal(runner.calls.length, 0, 'no instance: nothing runs');
      instances = 2;
      const b = ask([[2, 2]]);
      const c = ask([[3, 3]]);
      await runner.nth(1);
      await eventLoopTurns();
      assert.equal(runner.calls.length, 2);
      assert.equal(scheduler.queuedCount, 1);
      runner.finishAll();
      await runner.nth(2);
      runner.finishAll();
      assert.deepEqual((await Promise.all([a, b, c])).map((r) => rowsOf(outputOf(r))[0][0]), [2, 3, 4]);
    });
  });

  describe('priority levels', () => {
    it('serves level 1 before the default level', async () => {
      const { runner } = start({ policy: { batching: false, maxBatchSize: 0, priorityLevels: 2, defaultPriorityLevel: 2 } });
      const blocker = ask([[0, 0]]);
      const busy = await runner.nth(0);
      const low = ask([[1, 1]]);
      const high = ask([[2, 2]], { priority: 1 });
      await eventLoopTurns();
      busy.finish();
      const second = await runner.nth(1);
      assert.deepEqual(rowsOf(second.inputs[0]), [[2, 2]]);
      second.finish();
      const third = await runner.nth(2);
      assert.deepEqual(rowsOf(third.inputs[0]), [[1, 1]]);
      third.finish();
      await Promise.all([blocker, low, high]);
    });

    it('puts the higher level first in a batch it shares with lower ones', async () => {
      const { runner } = start({ policy: { priorityLevels: 3, defaultPriorityLevel: 3 } });
      const blocker = ask([[0, 0]]);
      const busy = await runner.nth(0);
      const low = ask([[1, 1]]);
      const middle = ask([[2, 2]], { priority: 2 });
      const high = ask([[3, 3]], { priority: 1 });
      await eventLoopTurns();
      busy.finish();
      const run = await runner.nth(1);
      assert.deepEqual(rowsOf(run.inputs[0]), [[3, 3], [2, 2], [1, 1]]);
      run.finish();
      assert.deepEqual(rowsOf(outputOf(await low)), [[2, 2]]);
      assert.deepEqual(rowsOf(outputOf(await middle)), [[3, 3]]);
      assert.deepEqual(rowsOf(outputOf(await high)), [[4, 4]]);
      await blocker;
    });

    it('serves priority 0 and no priority at the default level', async () => {
      const { runner } = start({ policy: { batching: false, maxBatchSize: 0, priorityLevels: 2, defaultPriorityLevel: 1 } });
      const blocker = ask([[0, 0]]);
      const busy = await runner.nth(0);
      const second = ask([[1, 1]], { priority: 2 });
      const zero = ask([[2, 2]], { priority: 0 });
      const none = ask([[3, 3]]);
      await eventLoopTurns();
      busy.finish();
      for (let i = 1; i <= 3; i++) (await runner.nth(i)).finish();
      assert.deepEqual(runner.calls.slice(1).map((call) => rowsOf(call.inputs[0])[0][0]), [2, 3, 1]);
      await Promise.all([blocker, second, zero, none]);
    });

    for (const priority of [3, 1.5, -1]) {
      it(`refuses priority ${priority} on a model of 2 levels, and runs nothing`, async () => {
        const { runner, scheduler } = start({ policy: { priorityLevels: 2, defaultPriorityLevel: 2 } });
        await assertRejectsWithDomainError(ask([[1, 1]], { priority }), 'INFERENCE.INVALID_REQUEST', `priority ${priority}`, '1 (first served) to 2');
        await eventLoopTurns();
        assert.equal(runner.calls.length, 0);
        assert.equal(scheduler.queuedCount, 0);
      });
    }

    it('ignores the priority on a model without levels', async () => {
      const { runner } = start({ policy: { priorityLevels: 0 } });
      const answer = ask([[1, 1]], { priority: 7 });
      (await runner.nth(0)).finish();
      assert.deepEqual(rowsOf(outputOf(await answer)), [[2, 2]]);
    });
  });

  describe('queue policy', () => {
    it('refuses a request when the queue of its level is full, with a retry-after, and never runs it', async () => {
      const { runner, scheduler } = start({ policy: { defaultQueuePolicy: queuePolicy({ maxQueueSize: 2 }) } });
      const blocker = ask([[0, 0]]);
      const busy = await runner.nth(0);
      const queued = [ask([[1, 1]]), ask([[2, 2]])];
      const error = await assertRejectsWithDomainError(ask([[3, 3]]), 'INFERENCE.QUEUE_FULL', 'max_queue_size 2');
      assert.ok((error.details.retryAfterSeconds ?? 0) > 0, 'tells the client when to retry');
      assert.equal(scheduler.queuedCount, 2);

      busy.finish();
      const run = await runner.nth(1);
      assert.deepEqual(rowsOf(run.inputs[0]), [[1, 1], [2, 2]]);
      run.finish();
      await Promise.all([blocker, ...queued]);

      const afterwards = ask([[4, 4]]);
      (await runner.nth(2)).finish();
      await afterwards;
      assert.ok(!runner.calls.some((call) => rowsOf(call.inputs[0]).some(([v]) => v === 3)), 'the refused request never ran');
    });

    it('counts the queue size per level, each with its own policy', async () => {
      const { runner } = start({
        policy: { priorityLevels: 2, defaultPriorityLevel: 2, priorityQueuePolicies: new Map([[1, queuePolicy({ maxQueueSize: 1 })]]) },
      });
      const blocker = ask([[0, 0]]);
      const busy = await runner.nth(0);
      const high = ask([[1, 1]], { priority: 1 });
      await assertRejectsWithDomainError(ask([[2, 2]], { priority: 1 }), 'INFERENCE.QUEUE_FULL');
      const lows = [ask([[3, 3]]), ask([[4, 4]])];
      busy.finish();
      const run = await runner.nth(1);
      assert.deepEqual(rowsOf(run.inputs[0]), [[1, 1], [3, 3], [4, 4]]);
      run.finish();
      await Promise.all([blocker, high, ...lows]);
    });

    it('REJECT: answers DEADLINE_EXCEEDED when the timeout passes in the queue, and never runs the request', async () => {
      const { runner, scheduler } = start({
        policy: {
          priorityLevels: 2,
          defaultPriorityLevel: 2,
          priorityQueuePolicies: new Map([[2, queuePolicy({ timeoutAction: 'REJECT', defaultTimeoutMicros: 20_000 })]]),
        },
      });
      const blocker = ask([[0, 0]], { priority: 1 });
      const busy = await runner.nth(0);
      const expiring = ask([[1, 1]]);
      await clock.advance(20);
      await assertRejectsWithDomainError(expiring, 'INFERENCE.DEADLINE_EXCEEDED', '(20 ms)', 'in the queue');
      assert.equal(scheduler.queuedCount, 0);

      busy.finish();
      const next = ask([[2, 2]], { priority: 1 });
      const run = await runner.nth(1);
      assert.deepEqual(rowsOf(run.inputs[0]), [[2, 2]]);
      run.finish();
      await Promise.all([blocker, next]);
      assert.equal(runner.calls.length, 2);
    });

    it('stops counting the queue timeout once the request is taken into a batch (Triton)', async () => {
      const { runner } = start({ policy: { defaultQueuePolicy: queuePolicy({ defaultTimeoutMicros: 20_000 }) } });
      const answer = ask([[1, 1]], { timeoutMicros: 10_000 });
      const state = track(answer);
      const run = await runner.nth(0);
      await clock.advance(60);
      assert.equal(state.settled, false, 'still running past its queue timeout');
      run.finish();
      assert.deepEqual(rowsOf(outputOf(await answer)), [[2, 2]]);
    });

    it("answers DEADLINE_EXCEEDED when the server's maximum timeout passes while the batch runs; the rest of the batch is answered", async () => {
      const { runner, scheduler } = start({ policy: { maxBatchSize: 2, maxQueueDelayMicros: 10_000_000 }, maxTimeoutMs: 200 });
      const early = ask([[1, 1]]);
      await clock.advance(50);
      const late = ask([[2, 2]]);
      const run = await runner.nth(0);
      assert.equal(run.rows, 2);
      await clock.advance(150);

      await assertRejectsWithDomainError(early, 'INFERENCE.DEADLINE_EXCEEDED', '(200 ms)', 'while its batch ran');
      assert.equal(run.ended, false, 'answered before its run ended');
      assert.equal(scheduler.inflightCount, 1, 'the instance stays busy until the run ends');

      run.finish();
      const result = await late;
      assert.deepEqual(rowsOf(outputOf(result)), [[3, 3]]);
      assert.equal(result.batchSize, 2);
    });

    it('DELAY: moves a request whose timeout passed behind the on-time requests of its level, and still runs it', async () => {
      let instances = 0;
      const { runner } = start({
        policy: { batching: false, maxBatchSize: 0, defaultQueuePolicy: queuePolicy({ timeoutAction: 'DELAY', defaultTimeoutMicros: 20_000 }) },
        concurrency: () => instances,
      });
      const late = ask([[1, 1]]);
      await clock.advance(60);
      instances = 1;
      const onTime = ask([[2, 2]]);

      const run1 = await runner.nth(0);
      assert.deepEqual(rowsOf(run1.inputs[0]), [[2, 2]]);
      run1.finish();
      const run2 = await runner.nth(1);
      assert.deepEqual(rowsOf(run2.inputs[0]), [[1, 1]]);
      run2.finish();
      assert.deepEqual(rowsOf(outputOf(await late)), [[2, 2]]);
      assert.deepEqual(rowsOf(outputOf(await onTime)), [[3, 3]]);
    });

    it("DELAY: a delayed request is still bounded by the server's maximum timeout", async () => {
      start({ policy: { defaultQueuePolicy: queuePolicy({ timeoutAction: 'DELAY', defaultTimeoutMicros: 10_000 }) }, concurrency: () => 0, maxTimeoutMs: 40 });
      const answer = ask([[1, 1]]);
      await clock.advance(40);
      await assertRejectsWithDomainError(answer, 'INFERENCE.DEADLINE_EXCEEDED', '(40 ms)');
    });

    describe("a client's timeout", () => {
      const nothingRuns = () => 0;

      it('lowers the default timeout', async () => {
        start({ policy: { defaultQueuePolicy: queuePolicy({ defaultTimeoutMicros: 10_000_000, allowTimeoutOverride: true }) }, concurrency: nothingRuns });
        const answer = ask([[1, 1]], { timeoutMicros: 20_000 });
        await clock.advance(20);
        await assertRejectsWithDomainError(answer, 'INFERENCE.DEADLINE_EXCEEDED', '(20 ms)', 'in the queue');
      });

      it('cannot raise the default timeout', async () => {
        start({ policy: { defaultQueuePolicy: queuePolicy({ defaultTimeoutMicros: 20_000, allowTimeoutOverride: true }) }, concurrency: nothingRuns });
        const answer = ask([[1, 1]], { timeoutMicros: 10_000_000 });
        await clock.advance(20);
        await assertRejectsWithDomainError(answer, 'INFERENCE.DEADLINE_EXCEEDED', '(20 ms)');
      });

      it('applies when the policy sets no timeout (the default queue policy allows it)', async () => {
        start({ concurrency: nothingRuns });
        const answer = ask([[1, 1]], { timeoutMicros: 20_000 });
        await clock.advance(20);
        await assertRejectsWithDomainError(answer, 'INFERENCE.DEADLINE_EXCEEDED', '(20 ms)');
      });

      for (const defaultTimeoutMicros of [0, 10_000_000]) {
        it(`is ignored when the policy does not allow overrides (default timeout ${defaultTimeoutMicros} µs)`, async () => {
          const { scheduler } = start({
            policy: { defaultQueuePolicy: queuePolicy({ defaultTimeoutMicros, allowTimeoutOverride: false }) },
            concurrency: nothingRuns,
          });
          const answer = ask([[1, 1]], { timeoutMicros: 20_000 });
          const state = track(answer);
          await clock.advance(60);
          assert.equal(state.settled, false, 'still waiting past the timeout the client asked for');
          assert.equal(scheduler.queuedCount, 1);
          scheduler.stop('unloading');
          await assertRejectsWithDomainError(answer, 'REGISTRY.VERSION_NOT_READY');
        });
      }

      it(
        'of 0 means no timeout, as in Triton',
        async () => {
          const { runner, scheduler } = start();
          const blocker = ask([[0, 0]]);
          const busy = await runner.nth(0);
          const answer = ask([[1, 1]], { timeoutMicros: 0 });
          const state = track(answer);
          await clock.advance(20);
          assert.equal(state.settled, false, 'still waiting for the busy instance');
          busy.finish();
          (await runner.nth(1)).finish();
          assert.deepEqual(rowsOf(outputOf(await answer)), [[2, 2]]);
          await blocker;
          assert.equal(scheduler.queuedCount, 0);
        },
      );
    });

    it("caps every request at the server's maximum timeout", async () => {
      start({ concurrency: () => 0, maxTimeoutMs: 30 });
      const answer = ask([[1, 1]]);
      await clock.advance(30);
      await assertRejectsWithDomainError(answer, 'INFERENCE.DEADLINE_EXCEEDED', '(30 ms)');
    });

    it("caps a longer queue timeout at the server's maximum timeout", async () => {
      start({ policy: { defaultQueuePolicy: queuePolicy({ defaultTimeoutMicros: 10_000_000 }) }, concurrency: () => 0, maxTimeoutMs: 30 });
      const answer = ask([[1, 1]], { timeoutMicros: 5_000_000 });
      await clock.advance(30);
      await assertRejectsWithDomainError(answer, 'INFERENCE.DEADLINE_EXCEEDED', '(30 ms)');
    });
  });

  describe('cancellation', () => {
    it('drops a cancelled request from the queue: answered CANCELLED, never run', async () => {
      const { runner, scheduler } = start();
      const blocker = ask([[0, 0]]);
      const busy = await runner.nth(0);
      const signal = new FakeCancellationSignal();
      const cancelled = ask([[1, 1]], { signal });
      const kept = ask([[2, 2]]);
      await eventLoopTurns();
      assert.equal(signal.listenerCount, 1);

      signal.abort();
      await assertRejectsWithDomainError(cancelled, 'INFERENCE.CANCELLED');
      assert.equal(scheduler.queuedCount, 1);
      busy.finish();
      const run = await runner.nth(1);
      assert.deepEqual(rowsOf(run.inputs[0]), [[2, 2]]);
      run.finish();
      await Promise.all([blocker, kept]);
      assert.equal(signal.listenerCount, 0);
    });

    it('discards the result of a request cancelled while its batch runs; the rest of the batch is answered', async () => {
      const { runner } = start();
      const signal = new FakeCancellationSignal();
      const cancelled = ask([[1, 1]], { signal });
      const kept = ask([[2, 2]]);
      const run = await runner.nth(0);
      assert.equal(run.rows, 2);

      signal.abort();
      await assertRejectsWithDomainError(cancelled, 'INFERENCE.CANCELLED');
      assert.equal(run.ended, false);
      run.finish();
      assert.deepEqual(rowsOf(outputOf(await kept)), [[3, 3]]);
    });

    it('refuses a request whose client is already gone, without running it', async () => {
      const { runner, scheduler } = start();
      const signal = FakeCancellationSignal.alreadyAborted();
      await assertRejectsWithDomainError(ask([[1, 1]], { signal }), 'INFERENCE.CANCELLED');
      await eventLoopTurns();
      assert.equal(runner.calls.length, 0);
      assert.equal(scheduler.queuedCount, 0);
      assert.equal(signal.listenerCount, 0);
    });

    it('stops listening once a request is answered, so a later abort changes nothing', async () => {
      const { runner } = start();
      const signal = new FakeCancellationSignal();
      const answer = ask([[1, 1]], { signal });
      (await runner.nth(0)).finish();
      assert.deepEqual(rowsOf(outputOf(await answer)), [[2, 2]]);
      assert.equal(signal.listenerCount, 0);
      signal.abort();
    });
  });

  describe('stop', () => {
    it('fails the waiting requests and refuses new ones as not ready; the running batch still answers', async () => {
      const { runner, scheduler } = start();
      const running = ask([[1, 1]]);
      const run = await runner.nth(0);
      const waiting = [ask([[2, 2]]), ask([[3, 3]])];
      await eventLoopTurns();

      scheduler.stop('version 1 of resnet is unloading');
      for (const request of waiting) await assertRejectsWithDomainError(request, 'REGISTRY.VERSION_NOT_READY', 'version 1 of resnet is unloading');
      await assertRejectsWithDomainError(ask([[4, 4]]), 'REGISTRY.VERSION_NOT_READY', 'version 1 of resnet is unloading');
      assert.equal(scheduler.queuedCount, 0);

      run.finish();
      assert.deepEqual(rowsOf(outputOf(await running)), [[2, 2]]);
      await eventLoopTurns();
      assert.equal(runner.calls.length, 1);
    });
  });

  describe('failures', () => {
    it('fails every member of a batch with the error of its run, and keeps serving', async () => {
      const { runner, scheduler } = start();
      const members = [ask([[1, 1]]), ask([[2, 2]], { signal: new FakeCancellationSignal() })];
      const boom = new DomainError('INFERENCE.RUNTIME_ERROR', 'the runtime ran out of memory');
      (await runner.nth(0)).fail(boom);
      for (const member of members) await assert.rejects(member, (error) => error === boom);
      assert.equal(scheduler.inflightCount, 0);

      const next = ask([[3, 3]]);
      (await runner.nth(1)).finish();
      assert.deepEqual(rowsOf(outputOf(await next)), [[4, 4]]);
    });

    it('fails every member with RUNTIME_ERROR when an output is not batch-major', async () => {
      const { runner } = start();
      const members = [ask([[1, 1]]), ask([[2, 2]])];
      (await runner.nth(0)).finish([{ name: 'y', datatype: 'FP32', shape: [1, 2], data: Float32Array.of(0, 0) }]);
      for (const member of members) await assertRejectsWithDomainError(member, 'INFERENCE.RUNTIME_ERROR', "output 'y'", 'not batch-major');
    });
  });

  describe('statistics', () => {
    it('starts at zero', () => {
      const { scheduler } = start();
      assert.deepEqual(scheduler.statisticsSnapshot(), {
        lastInference: 0,
        inferenceCount: 0,
        executionCount: 0,
        success: { count: 0, ns: 0 },
        fail: { count: 0, ns: 0 },
        queue: { count: 0, ns: 0 },
        computeInput: { count: 0, ns: 0 },
        computeInfer: { count: 0, ns: 0 },
        computeOutput: { count: 0, ns: 0 },
        batches: [],
      });
    });

    it('counts rows, runs, successes, failures and the runs of each batch size', async () => {
      const { runner, scheduler } = start();
      await clock.advance(1000);
      const before = clock.epochMillis();
      const batch = [ask([[1, 1]]), ask([[2, 2], [3, 3]])];
      (await runner.nth(0)).finish(undefined, 1500);
      await Promise.all(batch);
      const single = ask([[4, 4]]);
      (await runner.nth(1)).finish(undefined, 700);
      await single;
      const failing = ask([[5, 5]]);
      (await runner.nth(2)).fail(new Error('boom'));
      await assert.rejects(failing, /boom/);

      const stats = scheduler.statisticsSnapshot();
      assert.equal(stats.inferenceCount, 4, 'rows of the successful requests');
      assert.equal(stats.executionCount, 2, 'successful runs');
      assert.equal(stats.success.count, 3);
      assert.equal(stats.fail.count, 1);
      assert.equal(stats.queue.count, 3);
      assert.equal(stats.computeInfer.count, 3);
      assert.equal(stats.computeInfer.ns, (1500 + 1500 + 700) * 1000, "each request counts its run's compute time");
      assert.deepEqual(
        stats.batches.map((b) => [b.batchSize, b.computeInfer]),
        [
          [1, { count: 1, ns: 700_000 }],
          [3, { count: 1, ns: 1_500_000 }],
        ],
      );
      assert.equal(stats.lastInference, before, 'the time of the last request, on the scheduler\'s clock');
    });
  });
});
