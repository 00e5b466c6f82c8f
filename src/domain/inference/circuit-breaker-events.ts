import type { DomainEvent } from '../shared/aggregate-root.js';

export type BreakerState = 'closed' | 'open' | 'half_open';

/** A model version's circuit breaker changed state (the rollout context, alerts and logs may react). */
export interface CircuitBreakerStateChanged extends DomainEvent {
  readonly type: 'CircuitBreakerStateChanged';
  readonly modelName: string;
  readonly version: number;
  readonly state: BreakerState;
}
