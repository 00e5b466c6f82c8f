import { Injectable, type BeforeApplicationShutdown } from '@nestjs/common';
import { performance } from 'node:perf_hooks';
import { ContinuousBatchScheduler } from '../../domain/generation/continuous-batch-scheduler.js';
import { GenerationEngine } from '../../domain/generation/generation-engine.port.js';
import type { ModelVersion } from '../../domain/registry/model-version.js';
import { Clock } from '../../domain/shared/clock.js';
import { AppConfig } from '../../infra/config/app-config.js';
import { RequestTracer } from '../../domain/shared/request-tracer.port.js';
import { GenerationMetrics, type GenerationLoad } from '../observability/metrics/generation-metrics.js';

interface Served {
  readonly version: ModelVersion;
  readonly scheduler: ContinuousBatchScheduler;
}

/**
 * One continuous-batch scheduler per served generative version, made when the version first
 * serves a sequence, with the version's limits; drained (its running sequences finish) before the
 * version's instance is released, and at shutdown within SHUTDOWN_GRACE_MS.
 */
@Injectable()
export class GenerationSchedulers implements BeforeApplicationShutdown {
  private readonly schedulers = new Map<string, Served>();

  constructor(
    private readonly engine: GenerationEngine,
    private readonly config: AppConfig,
    private readonly metrics: GenerationMetrics,
    private readonly tracing: RequestTracer,
    private readonly clock: Clock,
  ) {
    metrics.follow(() => this.loads());
  }

  /** The scheduler of a READY generative version (the caller has checked both). */
  for(version: ModelVersion): ContinuousBatchScheduler {
    const key = version.key.toString();
    const served = this.schedulers.get(key);
    if (served) return served.scheduler;
    const generation = version.config!.generation!;
    const scheduling = version.config!.scheduling;
    const { modelName, version: number } = version;
    const attributes = { 'inference.model': modelName, 'inference.model_version': String(number) };
    const scheduler = new ContinuousBatchScheduler(
      {
        step: (inputs) => this.engine.step(version.key, inputs),
        release: (ids) => this.engine.release(version.key, ids),
      },
      {
        maxNumSeqs: generation.maxNumSeqs,
        maxModelLen: generation.maxModelLen,
        kvCacheBytes: generation.kvCacheBytes,
        kvCacheBytesPerToken: generation.model.kvCacheBytesPerToken,
        maxPrefillTokensPerStep: generation.maxPrefillTokensPerStep,
        maxQueueSize: scheduling.defaultQueuePolicy.maxQueueSize,
        streamBufferTokens: generation.streamBufferTokens,
        maxTimeoutMs: this.config.GENERATION_MAX_DURATION_MS,
        priorityLevels: scheduling.priorityLevels,
        defaultPriorityLevel: scheduling.defaultPriorityLevel,
        eosTokenIds: generation.model.eosTokenIds,
        overlapSteps: generation.overlapSteps,
      },
      this.clock,
      {
        stepped: ({ traces, prefillTokens, generatedTokens, computeMicros }) => {
          this.metrics.stepped(modelName, number, prefillTokens, generatedTokens);
          const endMs = performance.timeOrigin + performance.now();
          this.tracing.recordLinkedRoot('generation.step', traces, { ...attributes, 'generation.sequences': traces.length, 'generation.prefill_tokens': prefillTokens, 'generation.compute_us': computeMicros }, endMs - computeMicros / 1000, endMs);
        },
        firstToken: (ms) => this.metrics.timeToFirstToken(modelName, number, ms),
        interToken: (ms) => this.metrics.interTokenLatency(modelName, number, ms),
      },
      key,
    );
    this.schedulers.set(key, { version, scheduler });
    return scheduler;
  }

  /** Refuses new sequences of `key` and resolves once its running ones are done (ended after `graceMs`). */
  async drain(key: string, reason: string, graceMs?: number): Promise<void> {
    const served = this.schedulers.get(key);
    if (!served) return;
    await served.scheduler.drain(reason, graceMs);
    if (this.schedulers.get(key) === served) this.schedulers.delete(key);
  }

  /** What each generative version's scheduler holds now (metrics, health). */
  loads(): GenerationLoad[] {
    return [...this.schedulers.values()].map(({ version, scheduler }) => ({
      model: version.modelName,
      version: version.version,
      running: scheduler.runningCount,
      paused: scheduler.pausedCount,
      waiting: scheduler.waitingCount,
      kvCacheUsedBytes: scheduler.kvCacheUsedBytes,
      kvCacheReservedBytes: scheduler.kvCacheReservedBytes,
      kvCacheCapacityBytes: version.config!.generation!.kvCacheBytes,
    }));
  }

  /**
   * At shutdown, the running streams go on until they finish, for what SHUTDOWN_GRACE_MS leaves; those
   * still running then end with a final error event saying the server is shutting down.
   */
  async beforeApplicationShutdown(): Promise<void> {
    // SHUTDOWN_GRACE_MS bounds the whole shutdown, the drain delay before this included; a second is left to send the final events.
    const graceMs = Math.max(0, this.config.SHUTDOWN_GRACE_MS - this.config.SHUTDOWN_DRAIN_DELAY_MS - 1_000);
    await Promise.all([...this.schedulers.keys()].map((key) => this.drain(key, 'the server is shutting down', graceMs)));
  }
}
