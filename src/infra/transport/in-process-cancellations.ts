import { Injectable } from '@nestjs/common';
import type { CancellationSignal } from '../../domain/inference/dynamic-batch-scheduler.js';
import { RequestCancellations } from '../../domain/inference/request-cancellations.port.js';

/**
 * The cancellations of the requests this process is handling: the signals themselves, in a map,
 * under ids from a counter (ids are never reused while the process lives). A request's transport
 * and its handler run in the same process.
 */
@Injectable()
export class InProcessCancellations extends RequestCancellations {
  private readonly signals = new Map<string, CancellationSignal>();
  private next = 0;

  register(signal: CancellationSignal): string {
    const id = (++this.next).toString(36);
    this.signals.set(id, signal);
    return id;
  }

  release(id: string): void {
    this.signals.delete(id);
  }

  signalOf(id: string): CancellationSignal | undefined {
    return this.signals.get(id);
  }

  /** How many are registered (requests under way): what a test checks after they end. */
  get size(): number {
    return this.signals.size;
  }
}
