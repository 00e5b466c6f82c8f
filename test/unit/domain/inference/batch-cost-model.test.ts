import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BatchCostModel } from '../../../../src/domain/inference/batch-cost-model.js';

const WARM_UP_RUNS = 16;

/** Records `count` runs cycling through `rows`, each taking `fixedMs + perRowMs * rows`. */
function recordRuns(model: BatchCostModel, count: number, fixedMs: number, perRowMs: number, rows = [1, 2, 4, 8]): void {
  for (let i = 0; i < count; i++) {
    const r = rows[i % rows.length];
    model.recordRun(r, fixedMs + perRowMs * r);
  }
}

function assertClose(actual: number | undefined, expected: number, tolerance = 1e-6): void {
  assert.ok(actual !== undefined && Math.abs(actual - expected) <= tolerance, `expected ${expected} ± ${tolerance}, got ${actual}`);
}

describe('BatchCostModel', () => {
  describe('fixed cost of a run', () => {
    it(`is unknown before ${WARM_UP_RUNS} runs`, () => {
      const model = new BatchCostModel();
      recordRuns(model, WARM_UP_RUNS - 1, 5, 0.5);
      assert.equal(model.fixedCostMs, undefined);
    });

    it('is the intercept of run time against rows, fitted on the runs seen', () => {
      const model = new BatchCostModel();
      recordRuns(model, WARM_UP_RUNS, 5, 0.5);
      assertClose(model.fixedCostMs, 5);
    });

    it('is unknown while every run had the same rows (no line can be fitted)', () => {
      const model = new BatchCostModel();
      recordRuns(model, 40, 5, 0.5, [4]);
      assert.equal(model.fixedCostMs, undefined);
    });

    it('is never negative', () => {
      const model = new BatchCostModel();
      recordRuns(model, 32, -3, 2);
      assert.equal(model.fixedCostMs, 0);
    });

    it('follows a change of cost, forgetting old runs', () => {
      const model = new BatchCostModel();
      recordRuns(model, 32, 5, 0.5);
      recordRuns(model, 400, 20, 0.5);
      assertClose(model.fixedCostMs, 20, 0.01);
    });
  });

  describe('arrivals', () => {
    it('knows no interval before two arrivals, and 0 as the last arrival before any', () => {
      const model = new BatchCostModel();
      assert.equal(model.meanArrivalIntervalMs, undefined);
      assert.equal(model.lastArrival, 0);
      model.recordArrival(100);
      assert.equal(model.meanArrivalIntervalMs, undefined);
      assert.equal(model.lastArrival, 100);
    });

    it('takes the first gap as the interval, then moves 5% of the way to each new gap', () => {
      const model = new BatchCostModel();
      model.recordArrival(100);
      model.recordArrival(110);
      assert.equal(model.meanArrivalIntervalMs, 10);
      model.recordArrival(130);
      assertClose(model.meanArrivalIntervalMs, 10.5);
      assert.equal(model.lastArrival, 130);
    });

    it('converges on a steady arrival rate', () => {
      const model = new BatchCostModel();
      for (let i = 0; i < 50; i++) model.recordArrival(i * 20);
      for (let i = 0; i < 400; i++) model.recordArrival(1000 + i * 2);
      assertClose(model.meanArrivalIntervalMs, 2, 0.01);
    });
  });
});
