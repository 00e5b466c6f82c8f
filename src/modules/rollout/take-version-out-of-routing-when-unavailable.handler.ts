import { Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { CircuitBreakerStateChanged } from '../../domain/inference/circuit-breaker-events.js';
import type { ModelVersionFailed, ModelVersionUnloaded } from '../../domain/registry/model-events.js';
import { DomainEventBus } from '../../domain/shared/domain-event-bus.port.js';
import { Rollouts } from './rollouts.js';

/**
 * A version that fails or is unloaded leaves every rollout's routing at once (canary, shadow,
 * rules); so does one whose circuit breaker opens (a canary is rolled back), unless it is stable.
 */
@Injectable()
export class TakeVersionOutOfRoutingWhenUnavailable implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('Rollout');
  private readonly unsubscribes: (() => void)[] = [];

  constructor(
    private readonly events: DomainEventBus,
    private readonly rollouts: Rollouts,
  ) {}

  onModuleInit(): void {
    this.unsubscribes.push(
      this.events.subscribe<ModelVersionUnloaded>('ModelVersionUnloaded', (event) => this.handle(event.modelName, event.version, 'unloaded')),
      this.events.subscribe<ModelVersionFailed>('ModelVersionFailed', (event) => this.handle(event.modelName, event.version, `failed: ${event.reason}`)),
      this.events.subscribe<CircuitBreakerStateChanged>('CircuitBreakerStateChanged', ({ modelName, version, state }) => {
        if (state !== 'open') return;
        this.rollouts
          .versionFailing(modelName, version, 'its circuit breaker opened: too many of its requests failed')
          .catch((error: Error) => this.logger.error(`the rollout of '${modelName}' could not be saved: ${error.message}`));
      }),
    );
  }

  onModuleDestroy(): void {
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
  }

  private handle(modelName: string, version: number, reason: string): void {
    this.rollouts.versionUnavailable(modelName, version, reason).catch((error: Error) => this.logger.error(`the rollout of '${modelName}' could not be saved: ${error.message}`));
  }
}
