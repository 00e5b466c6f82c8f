import type { DomainEvent } from './aggregate-root.js';

/** Port to where domain events go once the state they describe is saved. */
export abstract class DomainEventBus {
  abstract publish(events: readonly DomainEvent[]): void;
  /** Calls `handler` with every event of `type` published from now on; returns what unsubscribes. */
  abstract subscribe<E extends DomainEvent>(type: E['type'], handler: (event: E) => void): () => void;
}
