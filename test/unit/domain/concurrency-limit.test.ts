import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_GRADIENT,
  FixedConcurrencyLimit,
  GradientConcurrencyLimit,
  type ConcurrencyLimit,
  type GradientSettings,
  type Permit,
} from '../../../src/domain/inference/concurrency-limit.js';

/**
 * The in-flight limits of a model version: a fixed cap, and the gradient limiter that follows
 * latency. Latencies are given by the test (no clock): a "round" holds as many permits as the limit
 * allows at once, then ends them all with one latency, as a saturated version would. Assertions are
 * on the direction the limit takes, not on its exact values.
 */

/** Takes permits until refused (at most `max`). */
function acquireAll(limit: ConcurrencyLimit, max = 10_000): Permit[] {
  const permits: Permit[] = [];
  for (let permit = limit.tryAcquire(); permit; permit = permits.length < max ? limit.tryAcquire() : undefined) permits.push(permit);
  return permits;
}

/** One saturated round: every permit the limit gives, all succeeding with `latencyMs`; returns the limit after. */
function saturatedRound(limit: GradientConcurrencyLimit, latencyMs: number): number {
  for (const permit of acquireAll(limit)) permit.succeeded(latencyMs);
  return limit.limit;
}

function rounds(limit: GradientConcurrencyLimit, count: number, latencyMs: number): number[] {
  return Array.from({ length: count }, () => saturatedRound(limit, latencyMs));
}

function aGradient(settings: Partial<GradientSettings> = {}): GradientConcurrencyLimit {
  return new GradientConcurrencyLimit({ ...DEFAULT_GRADIENT, max: 1000, ...settings });
}

const BASELINE_MS = 10;
/**
 * Saturated rounds that establish a baseline. The limit is judged once per window of answers, and
 * its baseline averages the last windows (a plain mean of the first ones): a young limiter soon
 * takes a sustained latency for its baseline.
 */
const ESTABLISHED = 40;

describe('FixedConcurrencyLimit', () => {
  it('gives permits up to the cap, then refuses until one ends', () => {
    const limit = new FixedConcurrencyLimit(3);
    const permits = acquireAll(limit);
    assert.equal(permits.length, 3);
    assert.equal(limit.inFlight, 3);
    assert.equal(limit.tryAcquire(), undefined);
    permits[0]!.succeeded(5);
    assert.equal(limit.inFlight, 2);
    assert.ok(limit.tryAcquire(), 'the freed place is taken again');
    assert.equal(limit.tryAcquire(), undefined);
  });

  for (const end of ['succeeded', 'dropped', 'ignored'] as const) {
    it(`frees a place when a permit ends as ${end}`, () => {
      const limit = new FixedConcurrencyLimit(1);
      const permit = limit.tryAcquire()!;
      assert.equal(limit.tryAcquire(), undefined);
      permit[end](10);
      assert.equal(limit.inFlight, 0);
      assert.ok(limit.tryAcquire());
    });
  }

  it('releases a permit once only, however often and however it is ended', () => {
    const limit = new FixedConcurrencyLimit(2);
    const [first, second] = acquireAll(limit);
    first!.succeeded(1);
    first!.succeeded(1);
    first!.dropped();
    first!.ignored();
    assert.equal(limit.inFlight, 1, 'one permit still held');
    assert.ok(limit.tryAcquire());
    assert.equal(limit.tryAcquire(), undefined, 'the cap still holds: the second permit was not released by the first one ending four times');
    second!.ignored();
    assert.equal(limit.inFlight, 1);
  });

  it('keeps its cap whatever the latency or the drops', () => {
    const limit = new FixedConcurrencyLimit(4);
    for (let i = 0; i < 50; i++) acquireAll(limit).forEach((permit, j) => (j % 2 ? permit.dropped() : permit.succeeded(1000 * i)));
    assert.equal(limit.limit, 4);
    assert.equal(acquireAll(limit).length, 4);
  });
});

describe('GradientConcurrencyLimit', () => {
  it('starts at its initial limit and refuses past it', () => {
    const limit = aGradient();
    assert.equal(limit.limit, DEFAULT_GRADIENT.initial);
    assert.equal(acquireAll(limit).length, DEFAULT_GRADIENT.initial);
    assert.equal(limit.inFlight, DEFAULT_GRADIENT.initial);
    assert.equal(limit.tryAcquire(), undefined);
  });

  it('grows while saturated and latency stays at its baseline', () => {
    const limit = aGradient();
    const limits = rounds(limit, 8, BASELINE_MS);
    for (let i = 1; i < limits.length; i++) assert.ok(limits[i]! >= limits[i - 1]!, `never falls: ${limits}`);
    assert.ok(limits.at(-1)! > DEFAULT_GRADIENT.initial, `grows: ${limits}`);
  });

  it('does not shrink while latency rises within the tolerance (1.5x the baseline)', () => {
    const limit = aGradient({ max: 30 });
    rounds(limit, ESTABLISHED, BASELINE_MS);
    const before = limit.limit;
    const limits = rounds(limit, 5, BASELINE_MS * 1.4);
    for (const after of limits) assert.ok(after >= before, `${before} -> ${limits}`);
  });

  it('shrinks when latency rises above the tolerance, round after round', () => {
    const limit = aGradient({ max: 30 });
    rounds(limit, ESTABLISHED, BASELINE_MS);
    const before = limit.limit;
    const limits = rounds(limit, 8, BASELINE_MS * 10);
    for (let i = 1; i < limits.length; i++) assert.ok(limits[i]! <= limits[i - 1]!, `never grows back while latency stays high: ${limits}`);
    assert.ok(limits.at(-1)! < before, `${before} -> ${limits}`);
    assert.ok(limits.at(-1)! < limits[0]!, `keeps shrinking: ${limits}`);
  });

  it('recovers once latency returns to its baseline', () => {
    const limit = aGradient({ max: 30 });
    rounds(limit, ESTABLISHED, BASELINE_MS);
    rounds(limit, 8, BASELINE_MS * 10);
    const shrunk = limit.limit;
    const limits = rounds(limit, 10, BASELINE_MS);
    assert.ok(limits.at(-1)! > shrunk, `${shrunk} -> ${limits}`);
  });

  it('never grows past max: the ceiling holds permits too', () => {
    const limit = aGradient({ max: 20 });
    const limits = rounds(limit, 20, BASELINE_MS);
    assert.ok(limits.every((l) => l <= 20), `${limits}`);
    assert.equal(limits.at(-1), 20, 'and reaches it');
    assert.equal(acquireAll(limit).length, 20);
  });

  it('starts at max when initial is above it', () => {
    assert.equal(aGradient({ initial: 50, max: 8 }).limit, 8);
  });

  it('never shrinks below min', () => {
    const limit = aGradient({ min: 20, max: 30 });
    rounds(limit, ESTABLISHED, BASELINE_MS);
    const limits = rounds(limit, 20, BASELINE_MS * 100);
    assert.ok(limits.every((l) => l >= 20), `${limits}`);
    assert.equal(limits.at(-1), 20, 'and reaches it');
  });

  it('cuts the limit by 10% on a drop (a timeout or a refusal downstream), down to min', () => {
    const limit = aGradient({ initial: 20, min: 15 });
    limit.tryAcquire()!.dropped();
    assert.equal(limit.limit, 18);
    limit.tryAcquire()!.dropped();
    assert.equal(limit.limit, 16); // 16.2
    for (let i = 0; i < 10; i++) limit.tryAcquire()!.dropped();
    assert.equal(limit.limit, 15);
    assert.equal(limit.inFlight, 0, 'each drop released its permit');
  });

  it('does not move on answers given while fewer than half the permits were in use (app-limited)', () => {
    const limit = aGradient();
    for (let i = 0; i < 200; i++) limit.tryAcquire()!.succeeded(BASELINE_MS);
    assert.equal(limit.limit, DEFAULT_GRADIENT.initial, 'lone requests at baseline latency do not grow it');
    for (let i = 0; i < 200; i++) limit.tryAcquire()!.succeeded(BASELINE_MS * 100);
    assert.equal(limit.limit, DEFAULT_GRADIENT.initial, 'nor slow lone requests shrink it');
    // Seven at once of 16: still under half.
    for (let i = 0; i < 40; i++) for (const permit of acquireAll(limit, 7)) permit.succeeded(BASELINE_MS * 100);
    assert.equal(limit.limit, DEFAULT_GRADIENT.initial);
  });

  it('does not move on permits ended as ignored (a bad request, a cancel, a failed run)', () => {
    const limit = aGradient();
    for (let i = 0; i < 10; i++) for (const permit of acquireAll(limit)) permit.ignored();
    assert.equal(limit.limit, DEFAULT_GRADIENT.initial);
    assert.equal(limit.inFlight, 0);
  });

  it('counts a permit once when the same end is repeated: neither released nor sampled again', () => {
    const limit = aGradient({ initial: 4 });
    const permits = acquireAll(limit);
    permits[3]!.dropped();
    const afterDrop = limit.limit;
    permits[3]!.dropped();
    assert.equal(limit.limit, afterDrop, 'one drop, one cut');
    permits[2]!.succeeded(1);
    permits[2]!.succeeded(1);
    permits[1]!.ignored();
    permits[1]!.ignored();
    assert.equal(limit.inFlight, 1);
  });

  it('counts a permit once however it is ended: a dropped permit ended again as succeeded or ignored is not released again', () => {
    const limit = aGradient({ initial: 4 });
    const permits = acquireAll(limit);
    permits[3]!.dropped();
    const afterDrop = limit.limit;
    permits[3]!.succeeded(1);
    permits[3]!.ignored();
    assert.equal(limit.limit, afterDrop, 'one drop, one cut, no sample');
    assert.equal(limit.inFlight, 3);
    assert.equal(acquireAll(limit).length, afterDrop - 3, 'no more permits than the limit allows');
  });
});
