import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Counter } from 'prom-client';
import { loadAppConfig } from '../../../src/infra/config/app-config.js';
import { QuotaBuckets } from '../../../src/modules/throttling/quota-buckets.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';

/**
 * The quota's buckets as the throttling module builds them from the configuration, two of them
 * standing for two replicas on one real Redis: the address ceiling (THROTTLE_ADDRESS_RATE) counts
 * across replicas like the client quota, each in buckets of its own, with leases of the default size
 * (a tenth of the burst); without REDIS_URL nothing is shared.
 */
const BURST = 20;

describe('QuotaBuckets (real Redis)', () => {
  let redis: RedisServer;
  const built: QuotaBuckets[] = [];
  const counters = () => ({
    leases: new Counter({ name: 'leases', help: 'h', labelNames: ['outcome'], registers: [] }),
    fallbacks: new Counter({ name: 'fallbacks', help: 'h', registers: [] }),
  });
  const replica = async (env: Record<string, string>) => {
    const { leases, fallbacks } = counters();
    const buckets = new QuotaBuckets(loadAppConfig({ THROTTLE_RATE: '0.001', THROTTLE_BURST: String(BURST), THROTTLE_ADDRESS_RATE: '0.001', THROTTLE_ADDRESS_BURST: String(BURST), ADMIN_TOKEN: 'replicas-share-this-admin-token', ...env }), leases, fallbacks);
    await buckets.onApplicationBootstrap();
    built.push(buckets);
    return { buckets, leases, fallbacks };
  };
  const HOUR_MS = 3_600_000;

  before(async () => {
    redis = await startRedisServer();
  });
  after(async () => {
    for (const buckets of built) await buckets.onApplicationShutdown();
    await redis.stop();
  });

  it('counts an address across replicas, apart from the client buckets, in leases of a tenth of the burst', async () => {
    const [a, b] = [await replica({ REDIS_URL: redis.url }), await replica({ REDIS_URL: redis.url })];
    let admitted = 0;
    for (let i = 0; i < BURST + 4; i++) {
      const record = await [a, b][Math.floor(i / 2) % 2]!.buckets.addresses.increment('10.0.0.7', HOUR_MS, BURST, 0, 'address');
      if (!record.isBlocked) admitted++;
    }
    assert.equal(admitted, BURST, 'one burst for the address across both replicas');
    const leases = (await a.leases.get()).values.find((v) => v.labels.outcome === 'granted')?.value ?? 0;
    assert.equal(leases, BURST / 2 / 2, 'replica a served its half of the burst in leases of 2');
    assert.equal((await a.buckets.clients.increment('addr:10.0.0.7', HOUR_MS, BURST, 0, 'default')).isBlocked, false, 'the client buckets are apart');
    assert.equal((await a.fallbacks.get()).values[0]?.value ?? 0, 0);
  });

  it('shares nothing without REDIS_URL', async () => {
    const [a, b] = [await replica({}), await replica({})];
    for (let i = 0; i < BURST; i++) assert.equal((await a.buckets.addresses.increment('10.0.0.8', HOUR_MS, BURST, 0, 'address')).isBlocked, false);
    assert.equal((await b.buckets.addresses.increment('10.0.0.8', HOUR_MS, BURST, 0, 'address')).isBlocked, false, "replica b's own bucket");
  });
});
