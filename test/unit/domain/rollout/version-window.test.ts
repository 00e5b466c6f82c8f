import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { VersionWindow } from '../../../../src/domain/rollout/version-window.js';
import { seededRandom } from '../../support/rollout.mother.js';

/** 1..n in a seeded random order. */
function shuffled(n: number): number[] {
  const random = seededRandom(3);
  const values = Array.from({ length: n }, (_, i) => i + 1);
  for (let i = values.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [values[i], values[j]] = [values[j], values[i]];
  }
  return values;
}

describe('VersionWindow', () => {
  it('starts empty: no requests, an error rate of 0, no p99 and no divergence', () => {
    assert.deepEqual(new VersionWindow(4).figures(), { version: 4, requests: 0, errors: 0, errorRate: 0, p99Ms: undefined, meanDivergence: undefined });
  });

  it('counts requests, failures and their rate', () => {
    const window = new VersionWindow(2);
    for (let i = 0; i < 8; i++) window.record({ ok: i % 4 !== 0, latencyMs: 5 });
    assert.deepEqual(window.figures(), { version: 2, requests: 8, errors: 2, errorRate: 0.25, p99Ms: 5, meanDivergence: undefined });
  });

  describe('p99', () => {
    const p99Of = (latencies: number[]): number | undefined => {
      const window = new VersionWindow(1);
      for (const latencyMs of latencies) window.record({ ok: true, latencyMs });
      return window.figures().p99Ms;
    };

    it('is the nearest-rank 99th percentile, whatever the order of arrival', () => {
      assert.equal(p99Of(shuffled(100)), 99);
      assert.equal(p99Of(shuffled(1000)), 990);
      assert.equal(p99Of(shuffled(200)), 198);
      assert.equal(p99Of([7]), 7);
      assert.equal(p99Of([3, 1]), 3);
    });

    it('sees a slow tail of more than 1% of the requests, not a single outlier in 200', () => {
      assert.equal(p99Of([...new Array<number>(199).fill(10), 5000]), 10);
      assert.equal(p99Of([...new Array<number>(197).fill(10), 5000, 5000, 5000]), 5000);
    });

    it('keeps the 4096 most recent latencies: a version that got faster shows its new p99', () => {
      assert.equal(p99Of([...new Array<number>(4096).fill(1000), ...new Array<number>(4096).fill(1)]), 1);
      assert.equal(p99Of([...new Array<number>(4096).fill(1000), ...new Array<number>(4000).fill(1)]), 1000, '96 slow ones are still 2% of the ring');
    });
  });

  it('averages the divergence over the mirrored outcomes only', () => {
    const window = new VersionWindow(3);
    window.record({ ok: true, latencyMs: 1, divergence: 0.5 });
    window.record({ ok: true, latencyMs: 1, divergence: 0 });
    window.record({ ok: false, latencyMs: 1 });
    window.record({ ok: true, latencyMs: 1, divergence: 0.25 });
    assert.equal(window.figures().meanDivergence, 0.25);
    assert.equal(window.figures().requests, 4);
  });
});
