import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DomainEvent } from '../../../../src/domain/shared/aggregate-root.js';
import { InProcessEventBus } from '../../../../src/infra/messaging/in-process-event-bus.js';

const event = (type: string): DomainEvent => ({ type, occurredAt: new Date(0) });

describe('InProcessEventBus', () => {
  it('delivers each event to the subscribers of its type, in publishing order', () => {
    const bus = new InProcessEventBus();
    const seen: string[] = [];
    bus.subscribe('A', (e) => seen.push(`1:${e.type}`));
    bus.subscribe('A', (e) => seen.push(`2:${e.type}`));
    bus.subscribe('B', (e) => seen.push(`3:${e.type}`));
    bus.publish([event('A'), event('B'), event('C')]);
    assert.deepEqual(seen, ['1:A', '2:A', '3:B']);
  });

  it('a subscriber that throws does not stop the others', () => {
    const bus = new InProcessEventBus();
    const seen: string[] = [];
    bus.subscribe('A', () => {
      throw new Error('broken subscriber');
    });
    bus.subscribe('A', (e) => seen.push(e.type));
    bus.publish([event('A')]);
    assert.deepEqual(seen, ['A']);
  });

  it('unsubscribing stops the deliveries', () => {
    const bus = new InProcessEventBus();
    const seen: string[] = [];
    const unsubscribe = bus.subscribe('A', (e) => seen.push(e.type));
    unsubscribe();
    bus.publish([event('A')]);
    assert.deepEqual(seen, []);
  });
});
