import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TokenBucketStorage, type ThrottlerStorageRecord } from '../../../src/infra/throttling/token-bucket.storage.js';

/**
 * The token bucket behind @nestjs/throttler's guard, on a clock the test moves by hand. As the guard
 * calls it: `limit` is the bucket's size (the burst) and `ttl` the milliseconds an empty bucket takes
 * to fill, so the rate is limit / ttl. What a client sees follows from the record: blocked or not,
 * X-RateLimit-Remaining (limit - totalHits), Retry-After (timeToBlockExpire, in seconds).
 */
class FakeClock {
  constructor(public nowMs = 1_000_000) {}
  readonly now = (): number => this.nowMs;
  advance(ms: number): void {
    this.nowMs += ms;
  }
}

/** A burst of 5, refilled at 1 token per second (5 s to fill from empty). */
const LIMIT = 5;
const TTL = 5000;

function aBucket(): { storage: TokenBucketStorage; clock: FakeClock; take: (key?: string) => ThrottlerStorageRecord } {
  const clock = new FakeClock();
  const storage = new TokenBucketStorage(clock.now);
  return { storage, clock, take: (key = 'client') => storage.take(key, TTL, LIMIT) };
}

const remaining = (record: ThrottlerStorageRecord) => Math.max(0, LIMIT - record.totalHits);

/** Takes until one is blocked (at most 100); returns how many were admitted. */
function admittedUntilBlocked(take: () => ThrottlerStorageRecord): number {
  for (let admitted = 0; admitted < 100; admitted++) if (take().isBlocked) return admitted;
  assert.fail('never blocked');
}

describe('TokenBucketStorage', () => {
  it('admits a full burst at once from an idle client, then blocks', () => {
    const { take } = aBucket();
    const records = Array.from({ length: LIMIT + 2 }, () => take());
    assert.deepEqual(
      records.map((r) => r.isBlocked),
      [false, false, false, false, false, true, true],
    );
  });

  it('counts down the whole tokens left (X-RateLimit-Remaining), and what a blocked request sees is no token left', () => {
    const { take } = aBucket();
    assert.deepEqual(
      Array.from({ length: LIMIT }, () => remaining(take())),
      [4, 3, 2, 1, 0],
    );
    const blocked = take();
    assert.equal(blocked.isBlocked, true);
    assert.equal(remaining(blocked), 0);
    assert.ok(blocked.totalHits > LIMIT, 'the guard reads totalHits over the limit as blocked');
  });

  it('counts only whole tokens as remaining: half a token left is none', () => {
    const { take, clock } = aBucket();
    admittedUntilBlocked(take);
    clock.advance(1500);
    const record = take();
    assert.equal(record.isBlocked, false);
    assert.equal(remaining(record), 0);
    assert.equal(take().isBlocked, true);
  });

  it('refills at the rate: one token per second here, fractions kept between calls', () => {
    const { take, clock } = aBucket();
    assert.equal(admittedUntilBlocked(take), LIMIT);
    clock.advance(999);
    assert.equal(take().isBlocked, true, 'not a whole token after 999 ms');
    clock.advance(1);
    assert.equal(take().isBlocked, false, 'one token after 1000 ms');
    assert.equal(take().isBlocked, true, 'and only one');
    clock.advance(500);
    assert.equal(take().isBlocked, true);
    clock.advance(500);
    assert.equal(take().isBlocked, false, 'two half seconds make a token');
    clock.advance(2500);
    assert.equal(admittedUntilBlocked(take), 2, '2.5 s: two whole tokens');
  });

  it('never holds more than the burst, however long the client was idle', () => {
    const { take, clock } = aBucket();
    admittedUntilBlocked(take);
    clock.advance(30_000);
    assert.equal(admittedUntilBlocked(take), LIMIT, '30 s at 1 per second still fills only the bucket');
    clock.advance(3_600_000);
    assert.equal(admittedUntilBlocked(take), LIMIT);
  });

  it('says when to come back (Retry-After): the whole seconds until the next token, at least 1', () => {
    const { take, clock } = aBucket();
    admittedUntilBlocked(take);
    assert.equal(take().timeToBlockExpire, 1);

    // A slow bucket: 1 token per 10 s.
    const slow = new TokenBucketStorage(clock.now);
    assert.equal(slow.take('k', 10_000, 1).isBlocked, false);
    assert.equal(slow.take('k', 10_000, 1).timeToBlockExpire, 10);
    clock.advance(4000);
    assert.equal(slow.take('k', 10_000, 1).timeToBlockExpire, 6);
    clock.advance(5999);
    assert.equal(slow.take('k', 10_000, 1).timeToBlockExpire, 1, '1 ms to go is still 1 s');
    clock.advance(1);
    const admitted = slow.take('k', 10_000, 1);
    assert.equal(admitted.isBlocked, false, 'admitted once Retry-After has passed');
    assert.equal(admitted.timeToBlockExpire, 0);

    // A fast bucket (100 per second): a token 5 ms away is still "retry in 1 s", never 0.
    const fast = new TokenBucketStorage(clock.now);
    for (let i = 0; i < 100; i++) fast.take('k', 1000, 100);
    clock.advance(5);
    const blocked = fast.take('k', 1000, 100);
    assert.equal(blocked.isBlocked, true);
    assert.equal(blocked.timeToBlockExpire, 1);
  });

  it('says how long until the bucket is full again (X-RateLimit-Reset, seconds)', () => {
    const { take } = aBucket();
    assert.equal(take().timeToExpire, 1);
    take();
    take();
    assert.equal(take().timeToExpire, 4);
  });

  it('keeps one bucket per key: emptying one leaves the others full', () => {
    const { take } = aBucket();
    assert.equal(admittedUntilBlocked(() => take('key:alice')), LIMIT);
    assert.equal(admittedUntilBlocked(() => take('key:bob')), LIMIT);
    assert.equal(remaining(take('addr:127.0.0.1')), LIMIT - 1);
    assert.equal(take('key:alice').isBlocked, true, 'alice is still over her quota');
  });

  it('is what the guard calls: increment() takes a token like take()', async () => {
    const { storage } = aBucket();
    const records = [];
    for (let i = 0; i <= LIMIT; i++) records.push(await storage.increment('k', TTL, LIMIT));
    assert.deepEqual(
      records.map((r) => r.isBlocked),
      [false, false, false, false, false, true],
    );
  });

  describe('sweep', () => {
    /** A bucket that takes 10 minutes to fill: still refilling a minute after it was emptied. */
    const SLOW_TTL = 600_000;

    it("forgets idle buckets once they are full again, at most once a minute; the client sees no difference", () => {
      const clock = new FakeClock();
      const storage = new TokenBucketStorage(clock.now);
      storage.take('idle', TTL, LIMIT);
      storage.take('also-idle', TTL, LIMIT);
      assert.equal(storage.size, 2);

      clock.advance(59_999);
      storage.take('new', TTL, LIMIT);
      assert.equal(storage.size, 3, 'no sweep before a minute has passed');

      clock.advance(1);
      storage.take('newer', TTL, LIMIT);
      assert.deepEqual(storage.size, 2, 'the two idle buckets were full again, and are gone');
      const again = storage.take('idle', TTL, LIMIT);
      assert.equal(LIMIT - again.totalHits, LIMIT - 1, 'a forgotten bucket comes back full');
    });

    it('keeps a bucket that is still refilling', () => {
      const clock = new FakeClock();
      const storage = new TokenBucketStorage(clock.now);
      for (let i = 0; i < LIMIT; i++) storage.take('busy', SLOW_TTL, LIMIT);
      clock.advance(60_000);
      storage.take('other', SLOW_TTL, LIMIT);
      assert.equal(storage.size, 2, 'the emptied bucket is still there');
      clock.advance(60_000);
      assert.equal(storage.take('busy', SLOW_TTL, LIMIT).isBlocked, false, '2 minutes at 1 token per 2 minutes: one token');
      assert.equal(storage.take('busy', SLOW_TTL, LIMIT).isBlocked, true, 'and its history was kept: only one');
    });
  });
});
