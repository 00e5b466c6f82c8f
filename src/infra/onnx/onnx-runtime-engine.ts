import { Inject, Injectable, Logger, Optional, type OnApplicationShutdown } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { InferenceEngine, type BatchMembers, type EngineRun, type EngineRunOptions, type InstanceStatus, type LoadedModel, type RuntimeOptions, type WarmupSample } from '../../domain/inference/inference-engine.port.js';
import { responseTooLarge } from '../../domain/inference/response-limit.js';
import type { Tensor } from '../../domain/inference/tensor.js';
import { defaultIntraOpThreads } from '../../domain/registry/model-config-limits.js';
import { DomainError } from '../../domain/shared/domain-error.js';
import type { RuntimeKey } from '../../domain/shared/model-version-id.js';
import { AppConfig } from '../config/app-config.js';
import { Tracing } from '../tracing/tracing.js';
import { cpuQuota } from '../host/cpu-quota.js';
import { FaultInjection } from './fault-injection.js';
import { runtimeLogSink, runtimeSeverityFor } from './onnxruntime-log.js';
import { OutputsTooLargeError, PoolReleasedError, RunTimeLimitError, SessionWorkerPool, type StderrLineSink } from './session-worker-pool.js';

/** The onnxruntime-node adapter: each loaded model version is a pool of session worker processes. */
@Injectable()
export class OnnxRuntimeEngine extends InferenceEngine implements OnApplicationShutdown {
  private readonly logger = new Logger(OnnxRuntimeEngine.name);
  /** onnxruntime's own lines, from its workers' stderr. */
  private readonly runtimeLogger = new Logger('onnxruntime');
  private readonly logSeverityLevel: 0 | 1 | 2 | 3 | 4;
  /** By the runtime key's text. */
  private readonly pools = new Map<string, { readonly key: RuntimeKey; readonly pool: SessionWorkerPool }>();
  /** Keys whose pool is starting: a second load of one of them must not start (and leak) another. */
  private readonly loading = new Set<string>();
  private readonly cpus = cpuQuota();

  constructor(
    private readonly tracing: Tracing = Tracing.off(),
    private readonly faults: FaultInjection = new FaultInjection(),
    @Optional() @Inject(AppConfig) config?: AppConfig,
  ) {
    super();
    this.logSeverityLevel = runtimeSeverityFor(config?.LOG_LEVEL ?? 'info');
  }

  async load(key: RuntimeKey, modelPath: string, options: RuntimeOptions): Promise<LoadedModel> {
    const text = key.toString();
    if (this.pools.has(text) || this.loading.has(text)) throw new Error(`'${key}' is already loaded`);
    this.loading.add(text);
    try {
      const injectedDelay = this.faults.loadDelayMs(key);
      if (injectedDelay > 0) await sleep(injectedDelay);
      return await this.startPool(key, modelPath, options);
    } finally {
      this.loading.delete(text);
    }
  }

  private async startPool(key: RuntimeKey, modelPath: string, options: RuntimeOptions): Promise<LoadedModel> {
    const intraOpThreads = options.intraOpThreads ?? defaultIntraOpThreads(this.cpus, options.instanceCount);
    const loaded = await SessionWorkerPool.start(
      {
        modelPath,
        executionProviders: options.executionProviders,
        intraOpThreads,
        interOpThreads: options.interOpThreads ?? 1,
        allowSpinning: options.allowSpinning,
        logSeverityLevel: this.logSeverityLevel,
      },
      options.instanceCount,
      this.runtimeLogOf(key),
    );
    this.pools.set(key.toString(), { key, pool: loaded.pool });
    const requested = options.executionProviders.join(', ');
    if (loaded.fallback) {
      this.logger.log(`${key}: execution provider ${loaded.executionProvider} in use (requested ${requested}; ${loaded.fallback})`);
    } else {
      this.logger.log(`${key}: execution provider ${loaded.executionProvider} in use, ${options.instanceCount} instance(s), ${intraOpThreads} intra-op thread(s) each`);
    }
    return { signature: loaded.signature, executionProvider: loaded.executionProvider };
  }

  /** Logs what the workers of `key` write to stderr at the level its onnxruntime severity maps to, naming the model version. */
  private runtimeLogOf(key: RuntimeKey): StderrLineSink {
    return runtimeLogSink(this.runtimeLogger, { model: key.modelName, version: key.version });
  }

  concurrency(key: RuntimeKey): number {
    return this.pools.get(key.toString())?.pool.instances ?? 0;
  }

  /** onnxruntime-node copies string tensors as C strings: an element would silently end at its first NUL byte. */
  checkInputs(inputs: readonly Tensor[]): void {
    for (const input of inputs) {
      if (!Array.isArray(input.data)) continue;
      const index = input.data.findIndex((element) => element.includes('\0'));
      if (index >= 0) {
        throw new DomainError('INFERENCE.INVALID_DATA', `input '${input.name}': element ${index} holds a NUL byte, which the ONNX runtime's string tensors cannot carry`);
      }
    }
  }

  async run(key: RuntimeKey, members: BatchMembers, outputNames: readonly string[], options: EngineRunOptions = {}): Promise<EngineRun> {
    const pool = this.pools.get(key.toString())?.pool;
    if (!pool) throw new DomainError('REGISTRY.VERSION_NOT_READY', `'${key}' is not loaded`);
    try {
      const run = await pool.run(members, outputNames, options.traceContext, this.faults.next(key), options.timeLimitMs, options.maxOutputBytes);
      // The worker took the trace context with the call and brought it back with its timing.
      if (run.traceparent) {
        this.tracing.recordSpan('compute', this.tracing.contextOf(run.traceparent), run.startedAtMs, run.startedAtMs + run.computeMicros / 1000, {
          'inference.runtime': 'onnxruntime',
          'inference.execution_provider': pool.executionProvider,
        });
      }
      return { outputs: run.outputs, computeMicros: run.computeMicros, inputMicros: run.inputMicros, outputMicros: run.outputMicros };
    } catch (error) {
      if (error instanceof OutputsTooLargeError) throw responseTooLarge(error.bytes, error.maxBytes, 'the outputs of its run hold');
      if (error instanceof PoolReleasedError) throw new DomainError('REGISTRY.VERSION_NOT_READY', `'${key}' was unloaded before this call ran`);
      if (error instanceof RunTimeLimitError) {
        this.logger.warn(`${key}: ${error.message}`);
        throw new DomainError('INFERENCE.DEADLINE_EXCEEDED', `model '${key}': ${error.message}`);
      }
      throw new DomainError('INFERENCE.RUNTIME_ERROR', `model '${key}' failed to run: ${(error as Error).message}`);
    }
  }

  async warmUp(key: RuntimeKey, samples: readonly WarmupSample[], timeLimitMs?: number): Promise<void> {
    const pool = this.pools.get(key.toString())?.pool;
    if (!pool) throw new DomainError('REGISTRY.VERSION_NOT_READY', `'${key}' is not loaded`);
    await pool.warmUp(samples, timeLimitMs);
  }

  async unload(key: RuntimeKey): Promise<void> {
    const pool = this.pools.get(key.toString())?.pool;
    if (!pool) return;
    this.pools.delete(key.toString());
    await pool.release();
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.all([...this.pools.values()].map(({ key }) => this.unload(key)));
  }

  status(): InstanceStatus[] {
    return [...this.pools.values()].map(({ key, pool }) => ({
      key,
      instances: pool.instances,
      busy: pool.busy,
      queued: pool.queued,
      executionProvider: pool.executionProvider,
      lostInstances: pool.lostWorkers,
      restartedInstances: pool.restartedWorkers,
    }));
  }
}
