/** What cancels a timer; opaque to the domain (the adapter's own timer object). */
export type TimerHandle = { readonly __timer: unique symbol };

/**
 * Time, as a port: the scheduler's timeouts and batch windows run on it, so its tests run on a
 * fake clock (test/support/fake-clock.ts) and the domain compiles without Node's types. The
 * adapter is src/infra/clock/system-clock.ts.
 */
export abstract class Clock {
  /** Monotonic milliseconds (fractional): durations and deadlines. */
  abstract now(): number;
  /** Milliseconds since the Unix epoch: timestamps reported to users. */
  abstract epochMillis(): number;
  /** Calls `callback` once, `delayMs` from now. */
  abstract setTimer(callback: () => void, delayMs: number): TimerHandle;
  /** Cancels a timer that has not fired; nothing for `undefined` or a fired one. */
  abstract clearTimer(timer: TimerHandle | undefined): void;
  /** Calls `callback` once the work of this turn, and the I/O it made ready, is done. */
  abstract defer(callback: () => void): void;
}
