import type { CancellationSignal } from './dynamic-batch-scheduler.js';

/**
 * The cancellations of requests under way, by id (port). A transport (or the jobs runner) owns the
 * signal that fires when its client goes, registers it for the time of the request and puts only
 * the id in the command (a command is plain data, so that it can cross a thread or process
 * boundary); the handler resolves the id to the signal it hands the scheduler.
 */
export abstract class RequestCancellations {
  /** Holds `signal` until `release(id)`; returns the id a command carries. */
  abstract register(signal: CancellationSignal): string;
  /** The request has ended: its id resolves to nothing any more. */
  abstract release(id: string): void;
  /** The signal registered under `id`; undefined when none is (then nothing cancels the request). */
  abstract signalOf(id: string): CancellationSignal | undefined;
}
