import { Injectable } from '@nestjs/common';
import { InjectMetric, makeCounterProvider } from '@willsoto/nestjs-prometheus';
import type { ThrottlerStorage } from '@nestjs/throttler';
import type { Counter } from 'prom-client';
import { DomainError } from '../../domain/shared/domain-error.js';
import { AppConfig } from '../../infra/config/app-config.js';
import { QuotaBuckets } from './quota-buckets.js';

export const THROTTLING_METRIC_PROVIDERS = [
  makeCounterProvider({ name: 'throttled_requests_total', help: 'Requests refused because their client was over its rate limit (THROTTLE_RATE), by transport.', labelNames: ['transport'] }),
];

export type Transport = 'http' | 'grpc';

/** Who a request comes from, as the rate limit sees it: the API key it names, else its source address. */
export interface ClientIdentity {
  readonly header: (name: string) => string | undefined;
  readonly address: string;
}

/**
 * The per-client quota: a token bucket of THROTTLE_BURST requests refilled at THROTTLE_RATE per
 * second, one bucket per client across HTTP and gRPC. The guard consults it for each call (through
 * @nestjs/throttler); a gRPC stream consults it for each of its requests.
 */
@Injectable()
export class ClientQuota {
  readonly enabled: boolean;
  /** Whether THROTTLE_ADDRESS_RATE bounds each source address. */
  readonly limitsAddresses: boolean;
  /** The bucket's size (@nestjs/throttler's `limit`). */
  readonly burst: number;
  /** Milliseconds for an empty bucket to fill (@nestjs/throttler's `ttl`). */
  readonly fillMs: number;

  /** The per-client buckets, in this process or shared by the replicas (REDIS_URL). */
  readonly storage: ThrottlerStorage;
  private readonly addresses: ThrottlerStorage;
  private readonly addressBurst: number;
  private readonly addressFillMs: number;

  constructor(
    private readonly config: AppConfig,
    buckets: QuotaBuckets,
    @InjectMetric('throttled_requests_total') private readonly throttled: Counter,
  ) {
    this.storage = buckets.clients;
    this.addresses = buckets.addresses;
    this.enabled = config.THROTTLE_RATE > 0;
    this.limitsAddresses = config.THROTTLE_ADDRESS_RATE > 0;
    this.burst = config.THROTTLE_BURST || Math.max(1, Math.ceil(config.THROTTLE_RATE));
    this.fillMs = this.enabled ? (this.burst / config.THROTTLE_RATE) * 1000 : 1;
    this.addressBurst = config.THROTTLE_ADDRESS_BURST || Math.max(1, Math.ceil(config.THROTTLE_ADDRESS_RATE));
    this.addressFillMs = config.THROTTLE_ADDRESS_RATE > 0 ? (this.addressBurst / config.THROTTLE_ADDRESS_RATE) * 1000 : 1;
  }

  /**
   * THROTTLE_ADDRESS_RATE: the ceiling of a source address, whatever client it names. The header
   * that names a client is the client's word: without a trusted proxy setting it, a client rotating
   * its value gets a fresh bucket per request; the ceiling still holds. Checked before the client's
   * own bucket, so a refused request makes no bucket for the name it sent.
   */
  async admitAddress(address: string, transport: Transport): Promise<void> {
    if (this.config.THROTTLE_ADDRESS_RATE <= 0) return;
    const record = await this.addresses.increment(address, this.addressFillMs, this.addressBurst, 0, 'address');
    if (!record.isBlocked) return;
    if (this.config.ALLOW_METRICS) this.throttled.inc({ transport });
    const retryAfterSeconds = record.timeToBlockExpire;
    throw new DomainError(
      'CLIENT.RATE_LIMITED',
      `the source address ${address} is over its ceiling of ${this.config.THROTTLE_ADDRESS_RATE} requests per second (THROTTLE_ADDRESS_RATE, burst ${this.addressBurst}); retry in ${retryAfterSeconds} s`,
      { retryAfterSeconds },
    );
  }

  /** The bucket key of a client: `key:<value>` for a named client, `addr:<ip>` otherwise. */
  clientOf({ header, address }: ClientIdentity): string {
    const named = this.config.THROTTLE_CLIENT_HEADER ? header(this.config.THROTTLE_CLIENT_HEADER)?.trim() : undefined;
    return named ? `key:${named}` : `addr:${address}`;
  }

  /**
   * Takes one token for a request of the client, or throws the refusal (what a stream's request
   * gets); says what the guard's X-RateLimit-* headers would (undefined with no limit on).
   */
  async admit(client: string, transport: Transport): Promise<{ limit: number; remaining: number; reset: number } | undefined> {
    if (!this.enabled) return undefined;
    const record = await this.storage.increment(client, this.fillMs, this.burst, 0, 'default');
    if (record.isBlocked) throw this.refusal(client, record.timeToBlockExpire, transport);
    return { limit: this.burst, remaining: Math.max(0, this.burst - record.totalHits), reset: record.timeToExpire };
  }

  /** 429 / RESOURCE_EXHAUSTED, naming the quota and when to come back (counted); the client's key itself is not echoed. */
  refusal(client: string, retryAfterSeconds: number, transport: Transport): DomainError {
    if (this.config.ALLOW_METRICS) this.throttled.inc({ transport });
    const who = client.startsWith('key:') ? `the client named by ${this.config.THROTTLE_CLIENT_HEADER}` : `the client at ${client.slice('addr:'.length)}`;
    return new DomainError(
      'CLIENT.RATE_LIMITED',
      `${who} is over its rate limit of ${this.config.THROTTLE_RATE} requests per second (burst ${this.burst}); retry in ${retryAfterSeconds} s`,
      { retryAfterSeconds },
    );
  }
}
