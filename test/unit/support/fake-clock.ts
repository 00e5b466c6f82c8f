import { Clock, type TimerHandle } from '../../../src/domain/shared/clock.js';
import { eventLoopTurns } from './fake-batch-runner.js';

interface FakeTimer {
  readonly due: number;
  readonly order: number;
  readonly callback: () => void;
}

/**
 * A clock whose time moves only when the test says so: `advance(ms)` fires every timer due on the
 * way, each at its own time and in order, so a test of a 20 ms timeout takes no 20 ms and no real
 * timer decides its outcome. `defer` stays a real turn of the event loop: ordering, not time.
 */
export class FakeClock extends Clock {
  private time = 0;
  private order = 0;
  private readonly timers = new Set<FakeTimer>();

  now(): number {
    return this.time;
  }

  epochMillis(): number {
    return Date.UTC(2026, 0, 1) + this.time;
  }

  setTimer(callback: () => void, delayMs: number): TimerHandle {
    const timer: FakeTimer = { due: this.time + Math.max(0, delayMs), order: this.order++, callback };
    this.timers.add(timer);
    return timer as unknown as TimerHandle;
  }

  clearTimer(timer: TimerHandle | undefined): void {
    if (timer !== undefined) this.timers.delete(timer as unknown as FakeTimer);
  }

  defer(callback: () => void): void {
    setImmediate(callback);
  }

  /** Timers set and not yet fired or cleared. */
  get pendingTimers(): number {
    return this.timers.size;
  }

  /**
   * Moves time forward by `ms`. Each timer due on the way fires at its due time, earliest first,
   * and the event loop turns after it, so what it started (a dispatch, a settled promise) has run
   * before the next one fires.
   */
  async advance(ms: number): Promise<void> {
    const target = this.time + ms;
    await eventLoopTurns();
    for (let next = this.nextDue(target); next; next = this.nextDue(target)) {
      this.timers.delete(next);
      this.time = Math.max(this.time, next.due);
      next.callback();
      await eventLoopTurns();
    }
    this.time = target;
  }

  private nextDue(limit: number): FakeTimer | undefined {
    let next: FakeTimer | undefined;
    for (const timer of this.timers) {
      if (timer.due > limit) continue;
      if (!next || timer.due < next.due || (timer.due === next.due && timer.order < next.order)) next = timer;
    }
    return next;
  }
}
