import { Clock, type TimerHandle } from '../../domain/shared/clock.js';

/** The process's clocks and timers: performance.now, Date.now, setTimeout and setImmediate. */
export class SystemClock extends Clock {
  now(): number {
    return performance.now();
  }

  epochMillis(): number {
    return Date.now();
  }

  setTimer(callback: () => void, delayMs: number): TimerHandle {
    // Node's own Timeout object is the handle: no allocation beyond the timer itself.
    return setTimeout(callback, delayMs) as unknown as TimerHandle;
  }

  clearTimer(timer: TimerHandle | undefined): void {
    if (timer !== undefined) clearTimeout(timer as unknown as NodeJS.Timeout);
  }

  defer(callback: () => void): void {
    setImmediate(callback);
  }
}
