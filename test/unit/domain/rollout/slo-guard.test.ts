import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { errorBudgetSpent, judge } from '../../../../src/domain/rollout/slo-guard.js';
import type { VersionFigures } from '../../../../src/domain/rollout/version-window.js';
import { anSlo } from '../../support/rollout.mother.js';

function figures(version: number, overrides: Partial<VersionFigures> = {}): VersionFigures {
  const requests = overrides.requests ?? 100;
  const errors = overrides.errors ?? 0;
  return { version, requests, errors, errorRate: requests === 0 ? 0 : errors / requests, p99Ms: 10, ...overrides };
}

const stable = figures(1);

describe('SLO guard', () => {
  describe('judge', () => {
    it('holds for a canary within every bound', () => {
      assert.deepEqual(judge(anSlo({ maxP99Ratio: 2, maxDivergence: 0.1 }), figures(2, { errors: 5, p99Ms: 20 }), stable, figures(3, { meanDivergence: 0.1 })), { ok: true });
    });

    it('is breached by an error rate above the bound, and names the figures', () => {
      const verdict = judge(anSlo({ maxErrorRate: 0.05 }), figures(2, { errors: 6 }), stable);
      assert.equal(verdict.ok, false);
      assert.match((verdict as { breach: string }).breach, /error rate 0\.06 > 0\.05 \(6 of 100 requests failed\)/);
    });

    it('is breached by a canary p99 above the ratio of the stable p99', () => {
      const verdict = judge(anSlo({ maxP99Ratio: 1.5 }), figures(2, { p99Ms: 16 }), figures(1, { p99Ms: 10 }));
      assert.equal(verdict.ok, false);
      assert.match((verdict as { breach: string }).breach, /p99 16 ms is 1\.6x the stable version's 10 ms \(> 1\.5x\)/);
    });

    it('compares latency only when both versions served requests in the step', () => {
      const slo = anSlo({ maxP99Ratio: 1.5 });
      assert.deepEqual(judge(slo, figures(2, { p99Ms: 100 }), figures(1, { requests: 0, p99Ms: undefined })), { ok: true });
      assert.deepEqual(judge(slo, figures(2, { requests: 0, p99Ms: undefined }), figures(1)), { ok: true });
      assert.deepEqual(judge(slo, figures(2, { p99Ms: 100 }), figures(1, { p99Ms: 0 })), { ok: true }, 'a stable p99 of 0 gives no ratio');
      assert.deepEqual(judge(anSlo(), figures(2, { p99Ms: 100 }), figures(1)), { ok: true }, 'no max_p99_ratio, no latency bound');
    });

    it('is breached by a shadow diverging more than the bound on average, and only with a shadow mirrored', () => {
      const slo = anSlo({ maxDivergence: 0.1 });
      const verdict = judge(slo, figures(2), stable, figures(3, { meanDivergence: 0.25 }));
      assert.equal(verdict.ok, false);
      assert.match((verdict as { breach: string }).breach, /shadow version 3 diverges by 0\.25 on average \(> 0\.1\)/);
      assert.deepEqual(judge(slo, figures(2), stable, figures(3, { meanDivergence: undefined })), { ok: true }, 'nothing mirrored yet');
      assert.deepEqual(judge(slo, figures(2), stable), { ok: true });
      assert.deepEqual(judge(anSlo(), figures(2), stable, figures(3, { meanDivergence: 5 })), { ok: true }, 'no max_divergence, no bound');
    });

    it('judges a shadow alone (no canary)', () => {
      assert.equal(judge(anSlo({ maxDivergence: 0.1 }), undefined, stable, figures(3, { meanDivergence: 1 })).ok, false);
      assert.equal(judge(anSlo({ maxErrorRate: 0 }), undefined, stable).ok, true);
    });
  });

  describe('errorBudgetSpent', () => {
    it('is spent once the failures exceed max_error_rate x min_requests, however few requests came', () => {
      const slo = anSlo({ maxErrorRate: 0.05 });
      assert.equal(errorBudgetSpent(slo, figures(2, { requests: 5, errors: 5 }), 100), false, '5 failures are within 0.05 x 100');
      assert.equal(errorBudgetSpent(slo, figures(2, { requests: 6, errors: 6 }), 100), true);
      assert.equal(errorBudgetSpent(slo, figures(2, { requests: 0, errors: 0 }), 100), false);
    });

    it('with max_error_rate 0, is spent by the first failure', () => {
      assert.equal(errorBudgetSpent(anSlo({ maxErrorRate: 0 }), figures(2, { requests: 1, errors: 0 }), 100), false);
      assert.equal(errorBudgetSpent(anSlo({ maxErrorRate: 0 }), figures(2, { requests: 1, errors: 1 }), 100), true);
    });
  });
});
