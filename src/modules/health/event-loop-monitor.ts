import { Injectable, type OnModuleDestroy } from '@nestjs/common';
import { monitorEventLoopDelay, type ELDHistogram } from 'node:perf_hooks';

const RESOLUTION_MS = 10;

/** Event-loop delay of the process since start, in milliseconds (beyond the sampling timer's own period). */
@Injectable()
export class EventLoopMonitor implements OnModuleDestroy {
  private readonly histogram: ELDHistogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });

  constructor() {
    this.histogram.enable();
  }

  summary(): { meanMs: number; p99Ms: number; maxMs: number } {
    const ms = (ns: number) => Math.max(0, Math.round(ns / 1e4) / 100 - RESOLUTION_MS);
    return { meanMs: ms(this.histogram.mean || 0), p99Ms: ms(this.histogram.percentile(99)), maxMs: ms(this.histogram.max) };
  }

  onModuleDestroy(): void {
    this.histogram.disable();
  }
}
