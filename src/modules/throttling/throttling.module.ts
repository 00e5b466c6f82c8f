import { Module } from '@nestjs/common';
import { ThrottlerModule } from '@nestjs/throttler';
import { ClientQuota, THROTTLING_METRIC_PROVIDERS } from './client-quota.js';
import { ClientThrottlerGuard } from './client-throttler.guard.js';
import { QUOTA_BUCKET_METRIC_PROVIDERS, QuotaBuckets } from './quota-buckets.js';

/** The quota and its buckets, which @nestjs/throttler's options are made from. */
@Module({
  providers: [QuotaBuckets, ...QUOTA_BUCKET_METRIC_PROVIDERS, ...THROTTLING_METRIC_PROVIDERS, ClientQuota],
  exports: [ClientQuota],
})
class ClientQuotaModule {}

/**
 * Per-client rate limits (THROTTLE_*): @nestjs/throttler's guard over a token-bucket storage (with
 * REDIS_URL, buckets the replicas share: see QuotaBuckets). The
 * guard is applied where requests would reach a model (the infer routes and RPCs); health,
 * metadata and admin calls are not limited.
 */
@Module({
  imports: [
    ClientQuotaModule,
    ThrottlerModule.forRootAsync({
      imports: [ClientQuotaModule],
      inject: [ClientQuota],
      useFactory: (quota: ClientQuota) => ({ throttlers: [{ name: 'default', limit: quota.burst, ttl: quota.fillMs }], storage: quota.storage }),
    }),
  ],
  providers: [ClientThrottlerGuard],
  exports: [ClientQuotaModule, ClientThrottlerGuard, ThrottlerModule],
})
export class ThrottlingModule {}
