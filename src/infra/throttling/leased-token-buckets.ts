import type { ThrottlerStorage } from '@nestjs/throttler';
import type { TokenBudget } from './redis-token-budget.js';
import { TokenBucketStorage, type ThrottlerStorageRecord } from './token-bucket.storage.js';

/** What a replica holds of one client's shared bucket. */
interface LocalLease {
  /** Leased tokens not yet spent here. */
  tokens: number;
  /** When the unspent tokens lapse (ms). */
  expiresAtMs: number;
  /** Whole tokens the shared bucket held after the last lease (X-RateLimit-Remaining's estimate). */
  sharedRemaining: number;
  /** The shared bucket had no token to give: refused without asking again until then (ms). */
  refusedUntilMs: number;
  /** A lease on its way from the shared bucket: requests arriving meanwhile wait for it rather than ask too. */
  pending?: Promise<void>;
  /** Requests waiting for the pending lease: the next lease asks for at least as many tokens. */
  waiting: number;
}

export interface LeasedTokenBucketsOptions {
  /** Names this set of buckets in the shared store (client quotas and address ceilings apart). */
  readonly namespace: string;
  /** Tokens asked for in one lease, given the bucket's size. */
  readonly leaseSize: (limit: number) => number;
  /** How long leased tokens stay usable here (ms). */
  readonly leaseMs: number;
  /** After the shared budget failed, how long this replica judges on its own buckets before it asks again (ms). */
  readonly retryMs: number;
  readonly now?: () => number;
  /** Called for each request judged on this replica's own buckets (the error: why the shared budget failed, on the first). */
  readonly onFallback?: (error: unknown) => void;
  /** Called when the shared budget answers again after an outage. */
  readonly onRecovered?: () => void;
  /** Called for each lease asked of the shared budget, with what it gave. */
  readonly onLease?: (granted: number) => void;
}

/** Idle leases are forgotten: an expired lease and no lease behave the same. */
const SWEEP_EVERY_MS = 60_000;

/**
 * A rate limit that counts across replicas while keeping the shared store off the common path:
 * each replica spends tokens it leased from the client's shared bucket (a {@link TokenBudget} on
 * Redis), and asks for another lease only when its own run out. A request that finds a leased
 * token costs no round trip; one lease of `leaseSize` tokens serves that many requests.
 *
 * The precision traded, for a bucket of size B refilled at R per second, N replicas and leases of
 * L tokens lasting T ms (a replica leases only when it holds no token, so at most N x L tokens are
 * held at once):
 * - over-admission: every admitted request spent a token of the shared bucket, but a token leased
 *   before a window may be spent in it: in any window of t seconds the cluster admits at most
 *   B + R x t (what the bucket gives) plus N x L;
 * - under-admission: a client calling one replica may be refused while up to (N - 1) x L of its
 *   tokens sit unspent on others, for at most T ms, after which they lapse (they are not returned);
 * - requests of a client that arrive while its lease is on its way wait for it, and the next lease
 *   asks for as many tokens as requests still wait (at least L): spent on arrival, they add nothing
 *   to the tokens held unspent, and a busy client costs a round trip per crowd, not per request;
 * - a client over its limit is refused without a round trip until the shared bucket's next token
 *   is due (Redis says when), so a flood of refused requests costs no round trip either;
 * - X-RateLimit-Remaining is this replica's leased tokens plus what the shared bucket held at the
 *   last lease, an estimate.
 *
 * When the shared budget cannot be reached (Redis down, slow or refusing), the replica fails open
 * to its own buckets (the single-node limit per replica: N replicas admit up to N times the rate)
 * for `retryMs`, then asks again: inference keeps serving, each fallback is reported.
 */
export class LeasedTokenBuckets implements ThrottlerStorage {
  private readonly leases = new Map<string, LocalLease>();
  private readonly now: () => number;
  private sharedDownUntilMs = 0;
  private outage = false;
  private lastSweepMs = 0;

  constructor(
    private readonly budget: TokenBudget,
    private readonly local: TokenBucketStorage,
    private readonly options: LeasedTokenBucketsOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  async increment(key: string, ttl: number, limit: number): Promise<ThrottlerStorageRecord> {
    const perMs = limit / ttl;
    for (;;) {
      const now = this.now();
      this.sweep(now);
      if (now < this.sharedDownUntilMs) return this.fallback(key, ttl, limit, undefined);
      const lease = this.leases.get(key);
      if (lease && lease.expiresAtMs > now && lease.tokens >= 1) {
        lease.tokens -= 1;
        return admitted(lease, limit, perMs);
      }
      if (lease?.pending) {
        lease.waiting += 1;
        await lease.pending;
        lease.waiting -= 1;
        continue;
      }
      if (lease && now < lease.refusedUntilMs) return refused(lease.refusedUntilMs - now, limit);
      const entry: LocalLease = lease ?? { tokens: 0, expiresAtMs: 0, sharedRemaining: 0, refusedUntilMs: 0, waiting: 0 };
      this.leases.set(key, entry);
      let failure: { error: unknown } | undefined;
      // Requests that waited for the last lease and found it spent are served by this one: a busy
      // client gets a round trip per crowd of requests, not one per request, whatever the lease
      // size. Those tokens are spent as soon as the lease arrives, so none of them sits unspent.
      const want = Math.min(limit, Math.max(this.options.leaseSize(limit), entry.waiting + 1));
      entry.pending = this.budget.lease(`${this.options.namespace}${key}`, ttl, limit, want).then(
        (given) => {
          const at = this.now();
          entry.tokens = given.granted;
          entry.expiresAtMs = at + this.options.leaseMs;
          entry.sharedRemaining = given.remaining;
          entry.refusedUntilMs = given.granted === 0 ? at + given.retryAfterMs : 0;
          this.options.onLease?.(given.granted);
          if (this.outage) {
            this.outage = false;
            this.options.onRecovered?.();
          }
        },
        (error: unknown) => {
          failure = { error };
        },
      );
      await entry.pending;
      entry.pending = undefined;
      if (failure) {
        this.sharedDownUntilMs = this.now() + this.options.retryMs;
        return this.fallback(key, ttl, limit, failure.error);
      }
    }
  }

  /** Leases held on this replica (for tests and the sweep). */
  get size(): number {
    return this.leases.size;
  }

  private fallback(key: string, ttl: number, limit: number, error: unknown): ThrottlerStorageRecord {
    this.outage = true;
    this.options.onFallback?.(error);
    return this.local.take(`${this.options.namespace}${key}`, ttl, limit);
  }

  private sweep(now: number): void {
    if (now - this.lastSweepMs < SWEEP_EVERY_MS) return;
    this.lastSweepMs = now;
    for (const [key, lease] of this.leases) {
      if (!lease.pending && lease.expiresAtMs <= now && lease.refusedUntilMs <= now) this.leases.delete(key);
    }
  }
}

function admitted(lease: LocalLease, limit: number, perMs: number): ThrottlerStorageRecord {
  const left = Math.min(limit, Math.floor(lease.tokens) + lease.sharedRemaining);
  return { totalHits: limit - left, timeToExpire: Math.ceil((limit - left) / perMs / 1000), isBlocked: false, timeToBlockExpire: 0 };
}

function refused(waitMs: number, limit: number): ThrottlerStorageRecord {
  const seconds = Math.max(1, Math.ceil(waitMs / 1000));
  return { totalHits: limit + 1, timeToExpire: seconds, isBlocked: true, timeToBlockExpire: seconds };
}
