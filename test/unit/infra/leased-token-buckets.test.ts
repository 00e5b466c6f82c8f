import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LeasedTokenBuckets, type LeasedTokenBucketsOptions } from '../../../src/infra/throttling/leased-token-buckets.js';
import type { Lease, TokenBudget } from '../../../src/infra/throttling/redis-token-budget.js';
import { TokenBucketStorage } from '../../../src/infra/throttling/token-bucket.storage.js';

/**
 * Replicas spending tokens leased from one shared bucket, on a clock the test moves by hand. The
 * shared bucket here is a TokenBucketStorage on the same clock (the arithmetic the Redis script
 * does), counting the leases asked of it: what a round trip to Redis would be.
 */
class FakeClock {
  constructor(public nowMs = 1_000_000) {}
  readonly now = (): number => this.nowMs;
  advance(ms: number): void {
    this.nowMs += ms;
  }
}

class SharedBucket implements TokenBudget {
  readonly buckets: TokenBucketStorage;
  leases = 0;
  failing = false;
  /** Leases wait for this before they are answered (to hold one in flight). */
  gate: Promise<void> = Promise.resolve();

  constructor(clock: FakeClock) {
    this.buckets = new TokenBucketStorage(clock.now);
  }

  async lease(key: string, ttlMs: number, limit: number, want: number): Promise<Lease> {
    this.leases += 1;
    await this.gate;
    if (this.failing) throw new Error('connect ECONNREFUSED 127.0.0.1:6379');
    let granted = 0;
    let record = this.buckets.take(key, ttlMs, limit);
    while (!record.isBlocked) {
      granted += 1;
      if (granted === want) break;
      record = this.buckets.take(key, ttlMs, limit);
    }
    const remaining = Math.max(0, limit - record.totalHits);
    return { granted, remaining: record.isBlocked ? 0 : remaining, retryAfterMs: granted === 0 ? record.timeToBlockExpire * 1000 : 0 };
  }
}

/** A burst of 10, refilled at 1 token per second. */
const LIMIT = 10;
const TTL = 10_000;

function aCluster(replicas: number, overrides: Partial<LeasedTokenBucketsOptions> = {}) {
  const clock = new FakeClock();
  const shared = new SharedBucket(clock);
  const events: string[] = [];
  const nodes = Array.from(
    { length: replicas },
    () =>
      new LeasedTokenBuckets(shared, new TokenBucketStorage(clock.now), {
        namespace: 'client:',
        leaseSize: () => 2,
        leaseMs: 1000,
        retryMs: 500,
        now: clock.now,
        onFallback: (error) => events.push(`fallback${error ? `: ${(error as Error).message}` : ''}`),
        onRecovered: () => events.push('recovered'),
        ...overrides,
      }),
  );
  return { clock, shared, nodes, events, take: (node: number, key = 'alice') => nodes[node]!.increment(key, TTL, LIMIT) };
}

describe('LeasedTokenBuckets', () => {
  it('counts a client across replicas: the burst is shared, and one lease serves as many requests as it holds', async () => {
    const { shared, take } = aCluster(2);
    const admitted: boolean[] = [];
    // Two requests on one replica, two on the other...: each spends the lease it took.
    for (let i = 0; i < LIMIT; i++) admitted.push(!(await take(Math.floor(i / 2) % 2)).isBlocked);
    assert.deepEqual(admitted, Array(LIMIT).fill(true));
    assert.equal(shared.leases, LIMIT / 2, 'one round trip per lease of 2 tokens');
    assert.equal((await take(0)).isBlocked, true, 'over the burst on one replica');
    assert.equal((await take(1)).isBlocked, true, 'and on the other');
  });

  it('refuses an over-limit client without asking the shared bucket again until its next token is due', async () => {
    const { clock, shared, take } = aCluster(1);
    while (!(await take(0)).isBlocked);
    const asked = shared.leases;
    const refusals = await Promise.all(Array.from({ length: 50 }, () => take(0)));
    assert.ok(refusals.every((record) => record.isBlocked && record.timeToBlockExpire === 1), 'Retry-After: the second the next token needs');
    assert.equal(shared.leases, asked, 'no round trip for a refusal');
    clock.advance(1000);
    assert.equal((await take(0)).isBlocked, false, 'the token that dripped back');
    assert.equal(shared.leases, asked + 1);
  });

  it('asks once for requests that arrive while a lease is on its way', async () => {
    const { shared, nodes } = aCluster(1, { leaseSize: () => 5 });
    let open!: () => void;
    shared.gate = new Promise((resolve) => (open = resolve));
    const waiting = Array.from({ length: 6 }, () => nodes[0]!.increment('bob', TTL, LIMIT));
    open();
    const records = await Promise.all(waiting);
    assert.deepEqual(records.map((r) => r.isBlocked), [false, false, false, false, false, false]);
    assert.equal(shared.leases, 2, 'one lease of 5 for the first five, another for the sixth');
  });

  it('asks the next lease for as many tokens as requests still wait: a busy client costs a round trip per crowd, and holds nothing unspent', async () => {
    const { shared, nodes } = aCluster(1, { leaseSize: () => 1 });
    let open!: () => void;
    shared.gate = new Promise((resolve) => (open = resolve));
    const waiting = Array.from({ length: 8 }, () => nodes[0]!.increment('dan', TTL, LIMIT));
    open();
    const records = await Promise.all(waiting);
    assert.ok(records.every((r) => !r.isBlocked));
    assert.equal(shared.leases, 2, 'a lease of 1 for the first, one of 7 for the seven that waited');
    assert.equal(LIMIT - (await nodes[0]!.increment('dan', TTL, LIMIT)).totalHits, 1, 'the shared bucket gave 9 and holds 1: nothing was left unspent here');
  });

  it('lets leased tokens lapse after the lease time: they are not spent later', async () => {
    const { clock, shared, take } = aCluster(1, { leaseSize: () => 5 });
    assert.equal((await take(0)).isBlocked, false);
    assert.equal(shared.leases, 1);
    clock.advance(1001);
    assert.equal((await take(0)).isBlocked, false);
    assert.equal(shared.leases, 2, 'the 4 unspent tokens lapsed: a new lease');
  });

  it('under-admits by at most the tokens another replica holds unspent', async () => {
    const { take } = aCluster(2, { leaseSize: () => 3 });
    assert.equal((await take(1)).isBlocked, false, 'replica 1 leases 3 and spends 1');
    let admitted = 0;
    while (!(await take(0)).isBlocked) admitted++;
    assert.equal(admitted, LIMIT - 3, 'replica 0 gets what the shared bucket has left');
  });

  it('reports X-RateLimit-Remaining as the leased tokens plus the shared bucket at the last lease', async () => {
    const { take } = aCluster(1);
    const record = await take(0);
    assert.equal(LIMIT - record.totalHits, 9, '1 leased token left here + 8 in the shared bucket');
  });

  it('fails open to per-replica buckets while the shared budget fails, then shares again', async () => {
    const { clock, shared, take, events } = aCluster(2);
    shared.failing = true;
    const first = await take(0);
    assert.equal(first.isBlocked, false, 'served on the local bucket');
    assert.deepEqual(events, ['fallback: connect ECONNREFUSED 127.0.0.1:6379']);
    const asked = shared.leases;
    let local = 1;
    while (!(await take(0)).isBlocked) local++;
    assert.equal(local, LIMIT, "replica 0's own burst");
    assert.equal((await take(1)).isBlocked, false, 'replica 1 fails open too, on its own bucket: while Redis is away the limit counts per replica');
    assert.equal(shared.leases, asked + 1, 'replica 0 asked nothing more during its retry period; replica 1 asked once');
    assert.ok(events.length > 2 && events.slice(1).every((e) => e.startsWith('fallback')), 'every locally judged request is reported');

    shared.failing = false;
    clock.advance(500);
    assert.equal((await take(0, 'carol')).isBlocked, false);
    assert.equal(events.at(-1), 'recovered');
  });

  it('forgets idle leases', async () => {
    const { clock, nodes, take } = aCluster(1);
    for (const key of ['a', 'b', 'c']) await take(0, key);
    assert.equal(nodes[0]!.size, 3);
    clock.advance(61_000);
    await take(0, 'd');
    assert.equal(nodes[0]!.size, 1);
  });
});
