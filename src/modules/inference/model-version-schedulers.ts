import { Injectable, type BeforeApplicationShutdown } from '@nestjs/common';
import { DynamicBatchScheduler, type BatchRunner } from '../../domain/inference/dynamic-batch-scheduler.js';
import { batchRows } from '../../domain/inference/batch.js';
import type { StatisticsSnapshot } from '../../domain/inference/inference-statistics.js';
import { Clock } from '../../domain/shared/clock.js';
import type { DomainError } from '../../domain/shared/domain-error.js';
import { InferenceEngine } from '../../domain/inference/inference-engine.port.js';
import type { ModelVersion } from '../../domain/registry/model-version.js';
import type { RuntimeKey } from '../../domain/shared/model-version-id.js';
import { SchedulerQueues, type SchedulerQueueStatus } from '../../domain/inference/scheduler-queues.port.js';
import { AppConfig } from '../../infra/config/app-config.js';
import { RequestTracer, type TraceContext } from '../../domain/shared/request-tracer.port.js';
import { InferenceMetrics } from '../observability/metrics/inference-metrics.js';

/** One dynamic batch scheduler per served model version, made when the version first serves a request. */
@Injectable()
export class ModelVersionSchedulers implements SchedulerQueues, BeforeApplicationShutdown {
  /** By the runtime key's text. */
  private readonly schedulers = new Map<string, DynamicBatchScheduler>();
  private readonly refusalWatchers: ((modelName: string) => void)[] = [];

  constructor(
    private readonly engine: InferenceEngine,
    private readonly config: AppConfig,
    private readonly metrics: InferenceMetrics,
    private readonly tracing: RequestTracer,
    private readonly clock: Clock,
  ) {}

  /** Accepts no more requests for `key`, and resolves once every accepted one has been answered. */
  drain(key: RuntimeKey, reason: string): Promise<void> {
    return this.drainScheduler(key.toString(), reason);
  }

  private async drainScheduler(text: string, reason: string): Promise<void> {
    const scheduler = this.schedulers.get(text);
    if (!scheduler) return;
    await scheduler.drain(reason);
    if (this.schedulers.get(text) === scheduler) this.schedulers.delete(text);
  }

  /** The scheduler of a READY version (the caller has checked it is READY). */
  for(version: ModelVersion): DynamicBatchScheduler {
    const key = version.key;
    let scheduler = this.schedulers.get(key.toString());
    if (!scheduler) {
      const engine = this.engine;
      const tracing = this.tracing;
      const labels = { 'inference.model': version.modelName, 'inference.model_version': String(version.version) };
      // No request waits for a run longer than MAX_REQUEST_TIMEOUT_MS: a run still going then is
      // computing for nobody, and the engine stops it (a runaway run would hold its instance forever).
      const timeLimitMs = this.config.MAX_REQUEST_TIMEOUT_MS;
      const runBatch: BatchRunner = async (members, outputNames, traces) => {
        // Each request's answer may hold MAX_RESPONSE_BYTES: a batch's outputs, that many per request in it.
        const maxOutputBytes = this.config.MAX_RESPONSE_BYTES * Math.max(1, traces.length);
        const batch = tracing.startLinkedRoot('batch', traces as readonly (TraceContext | undefined)[], { ...labels, 'inference.batch_size': members.reduce((rows, inputs) => rows + batchRows(inputs), 0), 'inference.batch_requests': traces.length });
        if (!batch) return engine.run(key, members, outputNames, { timeLimitMs, maxOutputBytes });
        try {
          return await engine.run(key, members, outputNames, { traceContext: batch.traceparent, timeLimitMs, maxOutputBytes });
        } catch (error) {
          batch.fail((error as Error).message);
          throw error;
        } finally {
          batch.end();
        }
      };
      scheduler = new DynamicBatchScheduler(version.config!.scheduling, runBatch, {
        // At least one: with every instance gone, a run fails at once instead of waiting for its deadline.
        concurrency: () => Math.max(1, engine.concurrency(key)),
        maxTimeoutMs: this.config.MAX_REQUEST_TIMEOUT_MS,
        onExecution: (rows) => this.metrics.executed(version.modelName, version.version, rows),
        onRefusalChange: () => this.refusalChanged(version.modelName),
      }, this.clock);
      this.schedulers.set(key.toString(), scheduler);
    }
    return scheduler;
  }

  /** Per version that has served: requests waiting in its queue and batches running. */
  status(): SchedulerQueueStatus[] {
    return [...this.schedulers].map(([key, s]) => ({ key, queued: s.queuedCount, runningBatches: s.inflightCount }));
  }

  /** Requests waiting in a version's queue; undefined before it served any. */
  queuedOf(key: RuntimeKey): number | undefined {
    return this.schedulers.get(key.toString())?.queuedCount;
  }

  /**
   * Calls `watcher` with a model's name each time the refusal before reading of one of its versions
   * changes (a queue filled or found room).
   */
  watchRefusals(watcher: (modelName: string) => void): void {
    this.refusalWatchers.push(watcher);
  }

  private refusalChanged(modelName: string): void {
    for (const watcher of this.refusalWatchers) watcher(modelName);
  }

  /** The refusal a request to this version gets before it is read (queue full), if any. */
  refusalBeforeReading(version: ModelVersion): DomainError | undefined {
    return this.schedulers.get(version.key.toString())?.refusalBeforeReading();
  }

  /** What a version's scheduler has counted; zeros before its first request. */
  statisticsOf(version: ModelVersion): StatisticsSnapshot {
    return (this.schedulers.get(version.key.toString()) ?? this.for(version)).statisticsSnapshot();
  }

  /** At shutdown, every request a scheduler accepted is answered (queued ones run) before sessions are released. */
  async beforeApplicationShutdown(): Promise<void> {
    await Promise.all([...this.schedulers.keys()].map((text) => this.drainScheduler(text, 'the server is shutting down')));
  }
}
