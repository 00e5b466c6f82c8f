import { Injectable, type OnModuleInit } from '@nestjs/common';
import {
  DEFAULT_GRADIENT,
  FixedConcurrencyLimit,
  GradientConcurrencyLimit,
  type ConcurrencyLimit,
  type Permit,
} from '../../domain/inference/concurrency-limit.js';
import type { ModelVersionUnloaded } from '../../domain/registry/model-events.js';
import type { ModelVersion } from '../../domain/registry/model-version.js';
import { DomainEventBus } from '../../domain/shared/domain-event-bus.port.js';
import { DomainError } from '../../domain/shared/domain-error.js';
import { ModelVersionId, type RuntimeKey } from '../../domain/shared/model-version-id.js';
import { AppConfig } from '../../infra/config/app-config.js';
import { InferenceMetrics } from '../observability/metrics/inference-metrics.js';

/** The ceiling of an adaptive limit whose model sets no max_inflight_requests. */
const ADAPTIVE_CEILING = 1024;

const UNLIMITED: Permit = { succeeded: () => {}, dropped: () => {}, ignored: () => {} };

/**
 * The in-flight limit of each model version: the model's `max_inflight_requests` and
 * `adaptive_concurrency` parameters, else MAX_INFLIGHT_REQUESTS and ADAPTIVE_CONCURRENCY. A request
 * over it is refused at once with 503/UNAVAILABLE, before it queues.
 */
@Injectable()
export class ConcurrencyLimits implements OnModuleInit {
  /** By the runtime key's text (a reload starts with a limit of its own); null: the version has none. */
  private readonly limits = new Map<string, { readonly key: RuntimeKey; readonly limit: ConcurrencyLimit | null }>();

  constructor(
    private readonly config: AppConfig,
    private readonly events: DomainEventBus,
    private readonly metrics: InferenceMetrics,
  ) {}

  /** A permit for one request to the version, or the refusal. */
  acquire(version: ModelVersion): Permit {
    const limit = this.limitOf(version);
    if (!limit) return UNLIMITED;
    const before = limit.limit;
    const permit = limit.tryAcquire();
    if (!permit) {
      throw new DomainError(
        'INFERENCE.CONCURRENCY_LIMITED',
        `version ${version.version} of model '${version.modelName}' already holds its limit of ${limit.limit} requests in flight (${limit instanceof GradientConcurrencyLimit ? 'adaptive' : 'max_inflight_requests'}); retry in a moment`,
        { retryAfterSeconds: 1 },
      );
    }
    // The limit moves when a permit ends: the gauge follows it then.
    const report = () => {
      if (limit.limit !== before) this.metrics.concurrencyLimitChanged(version.modelName, version.version, limit.limit);
    };
    return {
      succeeded: (latencyMs) => {
        permit.succeeded(latencyMs);
        report();
      },
      dropped: () => {
        permit.dropped();
        report();
      },
      ignored: permit.ignored,
    };
  }

  onModuleInit(): void {
    this.events.subscribe<ModelVersionUnloaded>('ModelVersionUnloaded', ({ modelName, version }) => {
      const unloaded = ModelVersionId.of(modelName, version);
      for (const [text, { key }] of [...this.limits]) if (key.isOf(unloaded)) this.limits.delete(text);
    });
  }

  private limitOf(version: ModelVersion): ConcurrencyLimit | null {
    const key = version.key;
    const known = this.limits.get(key.toString());
    if (known) return known.limit;
    let limit: ConcurrencyLimit | null;
    const policy = version.config!.concurrency;
    const maxInFlight = policy.maxInFlight ?? this.config.MAX_INFLIGHT_REQUESTS;
    const adaptive = policy.adaptive ?? this.config.ADAPTIVE_CONCURRENCY;
    if (adaptive) {
      const max = maxInFlight || ADAPTIVE_CEILING;
      const config = version.config!;
      // A batch per instance at least: fewer in flight would only make smaller batches.
      const min = Math.min(max, Math.max(1, config.maxBatchSize) * config.instanceCount);
      limit = new GradientConcurrencyLimit({ ...DEFAULT_GRADIENT, min, initial: Math.min(Math.max(DEFAULT_GRADIENT.initial, min), max), max });
    } else {
      limit = maxInFlight > 0 ? new FixedConcurrencyLimit(maxInFlight) : null;
    }
    this.limits.set(key.toString(), { key, limit });
    if (limit) this.metrics.concurrencyLimitChanged(version.modelName, version.version, limit.limit);
    return limit;
  }
}
