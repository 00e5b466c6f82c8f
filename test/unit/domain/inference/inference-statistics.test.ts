import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InferenceStatistics } from '../../../../src/domain/inference/inference-statistics.js';

const zero = { count: 0, ns: 0 };

describe('InferenceStatistics', () => {
  it('starts with every counter at zero and no batch size', () => {
    assert.deepEqual(new InferenceStatistics().snapshot(), {
      lastInference: 0,
      inferenceCount: 0,
      executionCount: 0,
      success: zero,
      fail: zero,
      queue: zero,
      computeInput: zero,
      computeInfer: zero,
      computeOutput: zero,
      batches: [],
    });
  });

  it('counts one execution per run, and the run durations under its batch size, in nanoseconds', () => {
    const statistics = new InferenceStatistics();
    statistics.recordExecution(4, 0.1, 2, 0.05);
    statistics.recordExecution(4, 0.3, 4, 0.15);
    statistics.recordExecution(1, 0, 1.5, 0);
    const snapshot = statistics.snapshot();
    assert.equal(snapshot.executionCount, 3);
    assert.deepEqual(snapshot.batches, [
      { batchSize: 1, computeInput: { count: 1, ns: 0 }, computeInfer: { count: 1, ns: 1_500_000 }, computeOutput: { count: 1, ns: 0 } },
      { batchSize: 4, computeInput: { count: 2, ns: 400_000 }, computeInfer: { count: 2, ns: 6_000_000 }, computeOutput: { count: 2, ns: 200_000 } },
    ]);
    assert.equal(snapshot.inferenceCount, 0, 'rows count only for answered requests');
  });

  it("counts a success's rows, its whole duration, its queue time and its share of the run", () => {
    const statistics = new InferenceStatistics();
    statistics.recordSuccess(3, 10, 4, 0.5, 5, 0.25, 1_700_000_000_000);
    statistics.recordSuccess(1, 2, 1, 0.5, 1, 0.25, 1_700_000_000_500);
    const snapshot = statistics.snapshot();
    assert.equal(snapshot.inferenceCount, 4);
    assert.deepEqual(snapshot.success, { count: 2, ns: 12_000_000 });
    assert.deepEqual(snapshot.queue, { count: 2, ns: 5_000_000 });
    assert.deepEqual(snapshot.computeInput, { count: 2, ns: 1_000_000 });
    assert.deepEqual(snapshot.computeInfer, { count: 2, ns: 6_000_000 });
    assert.deepEqual(snapshot.computeOutput, { count: 2, ns: 500_000 });
    assert.equal(snapshot.lastInference, 1_700_000_000_500);
    assert.deepEqual(snapshot.fail, zero);
  });

  it('counts a failure and its duration, without rows', () => {
    const statistics = new InferenceStatistics();
    statistics.recordFailure(7.5, 1_700_000_000_000);
    const snapshot = statistics.snapshot();
    assert.deepEqual(snapshot.fail, { count: 1, ns: 7_500_000 });
    assert.equal(snapshot.inferenceCount, 0);
    assert.deepEqual(snapshot.success, zero);
    assert.equal(snapshot.lastInference, 1_700_000_000_000);
  });

  it('rounds durations to whole nanoseconds', () => {
    const statistics = new InferenceStatistics();
    statistics.recordFailure(0.0000004, 1);
    statistics.recordFailure(0.0000004, 1);
    assert.deepEqual(statistics.snapshot().fail, { count: 2, ns: 1 });
  });

  it('gives a snapshot that later records do not change, and that cannot change the counters', () => {
    const statistics = new InferenceStatistics();
    statistics.recordExecution(2, 0, 1, 0);
    const before = statistics.snapshot();
    (before.success as { count: number }).count = 99;
    (before.batches[0].computeInfer as { count: number }).count = 99;
    statistics.recordExecution(2, 0, 1, 0);
    statistics.recordSuccess(2, 1, 0, 0, 1, 0, 5);

    const after = statistics.snapshot();
    assert.deepEqual(after.success, { count: 1, ns: 1_000_000 });
    assert.deepEqual(after.batches[0].computeInfer, { count: 2, ns: 2_000_000 });
    assert.equal(before.executionCount, 1);
  });
});
