import type { ThrottlerStorage } from '@nestjs/throttler';

export type ThrottlerStorageRecord = Awaited<ReturnType<ThrottlerStorage['increment']>>;

interface Bucket {
  tokens: number;
  updatedAtMs: number;
}

/** Idle buckets are forgotten once full again: a full bucket and no bucket behave the same. */
const SWEEP_EVERY_MS = 60_000;

/**
 * @nestjs/throttler's storage as a token bucket per key, rather than its fixed window (which lets
 * a client send twice its limit across a window's edge). Read through the library's interface:
 * `limit` is the bucket's size (the burst) and `ttl` the milliseconds it takes to fill from empty,
 * so the refill rate is limit/ttl. `increment` takes one token; with none left the request is
 * blocked until one has dripped back (`timeToBlockExpire`, seconds: the guard's Retry-After).
 * In memory, per process; with REDIS_URL, LeasedTokenBuckets spends tokens leased from buckets
 * that a Redis script keeps with this same arithmetic, and falls back on this one.
 */
export class TokenBucketStorage implements ThrottlerStorage {
  private readonly buckets = new Map<string, Bucket>();
  private lastSweepMs = 0;

  constructor(private readonly now: () => number = Date.now) {}

  async increment(key: string, ttl: number, limit: number): Promise<ThrottlerStorageRecord> {
    return this.take(key, ttl, limit);
  }

  /** The synchronous body of {@link increment}: the bucket's arithmetic, one token taken when there is one. */
  take(key: string, ttl: number, limit: number): ThrottlerStorageRecord {
    const now = this.now();
    this.sweep(now, ttl, limit);
    const perMs = limit / ttl;
    const bucket = this.buckets.get(key) ?? { tokens: limit, updatedAtMs: now };
    bucket.tokens = Math.min(limit, bucket.tokens + (now - bucket.updatedAtMs) * perMs);
    bucket.updatedAtMs = now;
    this.buckets.set(key, bucket);
    const isBlocked = bucket.tokens < 1;
    if (!isBlocked) bucket.tokens -= 1;
    return {
      // What the guard turns into X-RateLimit-Remaining (limit - totalHits): the whole tokens left.
      totalHits: isBlocked ? limit + 1 : limit - Math.floor(bucket.tokens),
      timeToExpire: Math.ceil((limit - bucket.tokens) / perMs / 1000),
      isBlocked,
      timeToBlockExpire: isBlocked ? Math.max(1, Math.ceil((1 - bucket.tokens) / perMs / 1000)) : 0,
    };
  }

  get size(): number {
    return this.buckets.size;
  }

  private sweep(now: number, ttl: number, limit: number): void {
    if (now - this.lastSweepMs < SWEEP_EVERY_MS) return;
    this.lastSweepMs = now;
    for (const [key, bucket] of this.buckets) {
      if (bucket.tokens + (now - bucket.updatedAtMs) * (limit / ttl) >= limit) this.buckets.delete(key);
    }
  }
}
