import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { LeasedTokenBuckets } from '../../../src/infra/throttling/leased-token-buckets.js';
import { RedisTokenBudget, THROTTLE_KEY_PREFIX } from '../../../src/infra/throttling/redis-token-budget.js';
import { TokenBucketStorage } from '../../../src/infra/throttling/token-bucket.storage.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';

/**
 * The shared side of the rate limit against a real redis-server: the Lua script's arithmetic,
 * leases from several connections at once (what replicas do) never handing out more than the
 * bucket holds, and the replica's fallback when Redis is killed. Buckets here fill in an hour, so
 * that no token drips back while a test runs.
 */
const HOUR_MS = 3_600_000;

describe('RedisTokenBudget (real Redis)', () => {
  let redis: RedisServer;
  const clients: Redis[] = [];
  const connect = (): Redis => {
    const client = new Redis(redis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 1000, lazyConnect: true });
    client.on('error', () => undefined);
    clients.push(client);
    return client;
  };
  const connected = async (): Promise<Redis> => {
    const client = connect();
    await client.connect();
    return client;
  };

  before(async () => {
    redis = await startRedisServer();
  });
  after(async () => {
    for (const client of clients) client.disconnect();
    await redis.stop();
  });

  it('grants what is asked while the bucket holds it, then what is left, then nothing with the wait for the next token', async () => {
    const budget = new RedisTokenBudget(await connected());
    assert.deepEqual(await budget.lease('arith', HOUR_MS, 5, 2), { granted: 2, remaining: 3, retryAfterMs: 0 });
    assert.deepEqual(await budget.lease('arith', HOUR_MS, 5, 2), { granted: 2, remaining: 1, retryAfterMs: 0 });
    assert.deepEqual(await budget.lease('arith', HOUR_MS, 5, 2), { granted: 1, remaining: 0, retryAfterMs: 0 });
    const empty = await budget.lease('arith', HOUR_MS, 5, 2);
    assert.equal(empty.granted, 0);
    assert.ok(empty.retryAfterMs > 0 && empty.retryAfterMs <= HOUR_MS / 5, `a token every ${HOUR_MS / 5} ms: ${empty.retryAfterMs}`);
  });

  it('keeps each key apart, and lets a bucket key expire once it would be full again', async () => {
    const client = await connected();
    const budget = new RedisTokenBudget(client);
    assert.equal((await budget.lease('expiry', 2000, 4, 4)).granted, 4);
    assert.equal((await budget.lease('other', 2000, 4, 4)).granted, 4, 'another key has its own bucket');
    const ttl = await client.pttl(`${THROTTLE_KEY_PREFIX}expiry`);
    assert.ok(ttl > 2000 && ttl <= 3000, `the time to fill from empty (2000 ms) and a second: ${ttl}`);
  });

  it('never grants more than the bucket holds to connections leasing at once', async () => {
    const budgets = await Promise.all([connected(), connected(), connected()]).then((all) => all.map((client) => new RedisTokenBudget(client)));
    const leases = await Promise.all(Array.from({ length: 120 }, (_, i) => budgets[i % 3]!.lease('race', HOUR_MS, 50, 1 + (i % 3))));
    assert.equal(leases.reduce((sum, lease) => sum + lease.granted, 0), 50);
  });

  it('shares a client between replicas, and fails open on each replica while Redis is killed', async () => {
    const fallbacks: unknown[] = [];
    const replica = (client: Redis) =>
      new LeasedTokenBuckets(new RedisTokenBudget(client), new TokenBucketStorage(), {
        namespace: 'client:',
        leaseSize: () => 2,
        leaseMs: HOUR_MS,
        retryMs: 0,
        onFallback: (error) => fallbacks.push(error),
      });
    const [a, b] = [replica(await connected()), replica(await connected())];
    let admitted = 0;
    for (let i = 0; i < 12; i++) if (!(await [a, b][Math.floor(i / 2) % 2]!.increment('dora', HOUR_MS, 8)).isBlocked) admitted++;
    assert.equal(admitted, 8, 'one burst of 8 across both replicas');
    assert.equal(fallbacks.length, 0);

    await redis.kill();
    const record = await a.increment('erin', HOUR_MS, 8);
    assert.equal(record.isBlocked, false, 'served on the replica\'s own bucket');
    assert.equal(fallbacks.length, 1);
    assert.ok(fallbacks[0] instanceof Error, String(fallbacks[0]));
    await redis.restart();
  });
});
