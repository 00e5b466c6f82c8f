import { Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import type { ThrottlerStorage } from '@nestjs/throttler';
import { InjectMetric, makeCounterProvider } from '@willsoto/nestjs-prometheus';
import { Redis } from 'ioredis';
import type { Counter } from 'prom-client';
import { AppConfig } from '../../infra/config/app-config.js';
import { LeasedTokenBuckets } from '../../infra/throttling/leased-token-buckets.js';
import { RedisTokenBudget } from '../../infra/throttling/redis-token-budget.js';
import { TokenBucketStorage } from '../../infra/throttling/token-bucket.storage.js';

export const QUOTA_BUCKET_METRIC_PROVIDERS = [
  makeCounterProvider({
    name: 'throttle_shared_budget_leases_total',
    help: 'Leases of rate-limit tokens asked of the shared budget on Redis (REDIS_URL), by outcome: granted (one or more tokens) or empty (the client is over its limit).',
    labelNames: ['outcome'],
  }),
  makeCounterProvider({
    name: 'throttle_shared_budget_fallbacks_total',
    help: "Rate-limit decisions this replica took on its own buckets because the shared budget on Redis (REDIS_URL) could not be reached (fail open: the limit then counts per replica).",
  }),
];

/** A command to Redis that takes longer fails, and the replica judges on its own buckets meanwhile. */
const REDIS_COMMAND_TIMEOUT_MS = 250;
/** After the shared budget failed, how long a replica judges on its own buckets before asking Redis again. */
const SHARED_RETRY_MS = 1000;
/** How long the start waits for Redis before serving with per-replica limits (Redis may come later). */
const REDIS_START_WAIT_MS = 2000;

/**
 * The buckets the quota spends from: in memory on this process (single node), or, with REDIS_URL,
 * leased from buckets on Redis that every replica shares (LeasedTokenBuckets says what precision
 * that trades), falling back to this process's buckets while Redis cannot be reached.
 */
@Injectable()
export class QuotaBuckets implements OnApplicationBootstrap, OnApplicationShutdown {
  /** The per-client buckets (THROTTLE_RATE / THROTTLE_BURST). */
  readonly clients: ThrottlerStorage;
  /** THROTTLE_ADDRESS_RATE's buckets, apart (a storage sweeps its buckets by one rate). */
  readonly addresses: ThrottlerStorage;
  private readonly redis?: Redis;
  private readonly logger = new Logger('RateLimit');
  /** The shared budget failed and has not answered since (one warning per outage, from either set of buckets). */
  private sharedDown = false;

  constructor(
    config: AppConfig,
    @InjectMetric('throttle_shared_budget_leases_total') leases: Counter,
    @InjectMetric('throttle_shared_budget_fallbacks_total') fallbacks: Counter,
  ) {
    const sharing = config.REDIS_URL !== undefined && (config.THROTTLE_RATE > 0 || config.THROTTLE_ADDRESS_RATE > 0);
    if (!sharing) {
      this.clients = new TokenBucketStorage();
      this.addresses = new TokenBucketStorage();
      return;
    }
    const redis = new Redis(config.REDIS_URL!, {
      connectionName: 'onnx-serving-throttle',
      // A lease waits for no reconnection: while Redis is away the replica judges on its own buckets.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
      // Leases of many clients at once travel in one write.
      enableAutoPipelining: true,
    });
    // ioredis reconnects by itself; an error event unheard would end the process.
    redis.on('error', () => undefined);
    this.redis = redis;
    const budget = new RedisTokenBudget(redis);
    const shared = (namespace: string) =>
      new LeasedTokenBuckets(budget, new TokenBucketStorage(), {
        namespace,
        leaseSize: (limit) => config.THROTTLE_LEASE_SIZE || Math.max(1, Math.floor(limit / 10)),
        leaseMs: config.THROTTLE_LEASE_MS,
        retryMs: SHARED_RETRY_MS,
        onLease: (granted) => {
          if (config.ALLOW_METRICS) leases.inc({ outcome: granted > 0 ? 'granted' : 'empty' });
        },
        onFallback: (error) => {
          if (config.ALLOW_METRICS) fallbacks.inc();
          if (this.sharedDown) return;
          this.sharedDown = true;
          this.logger.warn(`the shared rate-limit budget on Redis cannot be reached (${(error as Error | undefined)?.message ?? 'unknown error'}): each replica limits its clients on its own until it answers`);
        },
        onRecovered: () => {
          if (!this.sharedDown) return;
          this.sharedDown = false;
          this.logger.log('the shared rate-limit budget on Redis answers again: limits count across replicas');
        },
      });
    this.clients = shared('client:');
    this.addresses = shared('address:');
  }

  /** Gives Redis a moment to connect, so that the first requests are judged on the shared budget. */
  async onApplicationBootstrap(): Promise<void> {
    const redis = this.redis;
    if (!redis || redis.status === 'ready') return;
    const timeout = new AbortController();
    await Promise.race([once(redis, 'ready', { signal: timeout.signal }), delay(REDIS_START_WAIT_MS, undefined, { signal: timeout.signal })]).catch(() => undefined);
    timeout.abort();
  }

  async onApplicationShutdown(): Promise<void> {
    if (!this.redis) return;
    await this.redis.quit().catch(() => this.redis!.disconnect());
  }
}
