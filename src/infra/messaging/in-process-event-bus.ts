import { Injectable, Logger } from '@nestjs/common';
import { EventEmitter } from 'node:events';
import type { DomainEvent } from '../../domain/shared/aggregate-root.js';
import { DomainEventBus } from '../../domain/shared/domain-event-bus.port.js';

/**
 * The default event bus: subscribers in this process, called synchronously in publishing order.
 * A subscriber that throws is logged and does not stop the others or the publisher.
 */
@Injectable()
export class InProcessEventBus extends DomainEventBus {
  private readonly logger = new Logger(InProcessEventBus.name);
  private readonly emitter = new EventEmitter({ captureRejections: false });

  publish(events: readonly DomainEvent[]): void {
    for (const event of events) {
      for (const listener of this.emitter.listeners(event.type)) {
        try {
          (listener as (event: DomainEvent) => void)(event);
        } catch (error) {
          this.logger.error(`a subscriber of ${event.type} failed: ${(error as Error).message}`);
        }
      }
    }
  }

  subscribe<E extends DomainEvent>(type: E['type'], handler: (event: E) => void): () => void {
    this.emitter.on(type, handler as (event: DomainEvent) => void);
    return () => this.emitter.off(type, handler as (event: DomainEvent) => void);
  }
}
