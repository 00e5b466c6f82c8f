import { Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import CircuitBreaker from 'opossum';
import type { BreakerState, CircuitBreakerStateChanged } from '../../domain/inference/circuit-breaker-events.js';
import type { ModelVersionUnloaded } from '../../domain/registry/model-events.js';
import type { ModelVersion } from '../../domain/registry/model-version.js';
import { DomainEventBus } from '../../domain/shared/domain-event-bus.port.js';
import { DomainError, errorKindOf } from '../../domain/shared/domain-error.js';
import { ModelVersionId, type RuntimeKey } from '../../domain/shared/model-version-id.js';
import { AppConfig } from '../../infra/config/app-config.js';
import { InferenceMetrics } from '../observability/metrics/inference-metrics.js';

/**
 * One circuit breaker per model version (opossum), around its scheduler, so HTTP and gRPC share it.
 * Closed: requests run, and server-side failures (a runtime error, a timeout) are counted over a
 * rolling window; past BREAKER_ERROR_RATE with BREAKER_MIN_REQUESTS in the window it opens. Open:
 * requests fail at once with 503/UNAVAILABLE naming the breaker, nothing is computed. After
 * BREAKER_OPEN_MS it is half-open: one trial request runs; its success closes it, its failure opens
 * it again. A client's errors (bad input, a cancel, a full queue) never count as failures. Each
 * change is logged, published as CircuitBreakerStateChanged and exported as a metric.
 */
@Injectable()
export class CircuitBreakers implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('CircuitBreaker');
  /** By the runtime key's text: a reload starts with a breaker of its own. */
  private readonly breakers = new Map<string, { readonly key: RuntimeKey; readonly breaker: CircuitBreaker<[() => Promise<unknown>], unknown> }>();

  constructor(
    private readonly config: AppConfig,
    private readonly events: DomainEventBus,
    private readonly metrics: InferenceMetrics,
  ) {}

  run<T>(version: ModelVersion, call: () => Promise<T>): Promise<T> {
    return (this.breakerOf(version).fire(call) as Promise<T>).catch((error: unknown) => {
      if ((error as { code?: string }).code === 'EOPENBREAKER') {
        throw new DomainError(
          'INFERENCE.CIRCUIT_OPEN',
          `the circuit breaker of version ${version.version} of model '${version.modelName}' is open: too many of its recent requests failed; it is retried in a moment`,
          { retryAfterSeconds: Math.ceil(this.config.BREAKER_OPEN_MS / 1000) },
        );
      }
      throw error;
    });
  }

  /** A version's breakers go with the version (its reloads included). */
  onModuleInit(): void {
    this.events.subscribe<ModelVersionUnloaded>('ModelVersionUnloaded', ({ modelName, version }) => {
      const unloaded = ModelVersionId.of(modelName, version);
      for (const [text, { key, breaker }] of this.breakers) {
        if (!key.isOf(unloaded)) continue;
        breaker.shutdown();
        this.breakers.delete(text);
      }
    });
  }

  onApplicationShutdown(): void {
    for (const { breaker } of this.breakers.values()) breaker.shutdown();
    this.breakers.clear();
  }

  private breakerOf(version: ModelVersion): CircuitBreaker<[() => Promise<unknown>], unknown> {
    const key = version.key;
    let breaker = this.breakers.get(key.toString())?.breaker;
    if (breaker) return breaker;
    breaker = new CircuitBreaker((call: () => Promise<unknown>) => call(), {
      timeout: false, // the scheduler's deadlines bound every request
      errorThresholdPercentage: this.config.BREAKER_ERROR_RATE * 100,
      volumeThreshold: this.config.BREAKER_MIN_REQUESTS,
      rollingCountTimeout: this.config.BREAKER_WINDOW_MS,
      rollingCountBuckets: 10,
      resetTimeout: this.config.BREAKER_OPEN_MS,
      // Only the failures the version is to blame for count (a client's errors, a cancel, a full queue never do).
      errorFilter: (error: unknown) => !errorKindOf(error).blamesVersion,
    });
    const changed = (state: BreakerState) => this.changed(version, state);
    breaker.on('open', () => changed('open'));
    breaker.on('halfOpen', () => changed('half_open'));
    breaker.on('close', () => changed('closed'));
    this.breakers.set(key.toString(), { key, breaker });
    this.metrics.breakerState(version.modelName, version.version, 'closed');
    return breaker;
  }

  private changed(version: ModelVersion, state: BreakerState): void {
    this.metrics.breakerState(version.modelName, version.version, state);
    const event: CircuitBreakerStateChanged = { type: 'CircuitBreakerStateChanged', occurredAt: new Date(), modelName: version.modelName, version: version.version, state };
    this.events.publish([event]);
    const message = `circuit breaker of '${version.modelName}' version ${version.version}: ${state}`;
    if (state === 'open') this.logger.warn(message);
    else this.logger.log(message);
  }
}
